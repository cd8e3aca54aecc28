import { readFile } from 'node:fs/promises';
import { resolveConfigPath } from './resolve-paths.js';

/** `written`: the file as the config wrote it, which decides whether messages show it (see shownFile). */
export type SecretSource = { env: string } | { file: string; written?: string };

/**
 * The source a `<name>_env` / `<name>_file` pair of config keys names (the schema allows one),
 * with a relative file resolved against `baseDir`, and which of the two keys it came from.
 */
export function secretSource(envName: string | undefined, file: string | undefined, baseDir: string): { key: 'env' | 'file'; source: SecretSource } | undefined {
  if (envName !== undefined) return { key: 'env', source: { env: envName } };
  if (file !== undefined) return { key: 'file', source: { file: resolveConfigPath(baseDir, file), written: file } };
  return undefined;
}

/**
 * A variable's name as messages show it: a name in capitals, as variables are named; anything
 * else may be the secret itself, pasted where its variable's name belongs, and is not shown.
 */
function shownName(name: string): string {
  return /^[A-Z_][A-Z0-9_]{0,63}$/.test(name) ? name : 'named here (not shown: not a name in capitals, as variables are named; is it the secret itself?)';
}

/** Whether a part of a path or URL is shaped as a key is: 16 or more characters, letters and digits both. */
export function keyShaped(part: string): boolean {
  return part.length >= 16 && /[0-9]/.test(part) && /[a-z]/i.test(part);
}

/**
 * A secret file that cannot be read, as messages show it, unless it may be the secret itself,
 * pasted where its file's path belongs: a value holding `+`, `=` or a space (base64 does), or a
 * relative one with a part between its `/` as a key is (16 or more characters, letters and
 * digits both, no `.`). An absolute path is a path. `secrets/web`, `web.secret`,
 * `github-webhook-secret` and `/tmp/deployhook-8f3kq2x9vbn4/token` are shown.
 */
function shownFile(source: { file: string; written?: string }): string {
  const written = source.written ?? source.file;
  const keyLike = /[+=\s]/.test(written) || (!written.startsWith('/') && written.split('/').some((part) => keyShaped(part) && !part.includes('.')));
  return keyLike ? 'named here (not shown: it looks like a key; is it the secret itself?)' : `at ${source.file}`;
}

/**
 * What a secret may not hold: a control character. A secret is one line of text: a GitLab
 * token goes out as a header's value, where a line break would end the request's header (and
 * fetch's refusal quotes the value); two lines are two secrets, given as a list.
 */
const CONTROL = /\p{Cc}/u;
const ONE_LINE = 'expected one line of text, but it holds a line break or another control character (two secrets while rotating are a list of two, each in its own file or variable)';

/**
 * Reads a secret from an environment variable or a file (one trailing newline ignored): one
 * line, no control characters, unless `oneLine` is false (a caller with a stricter check).
 */
export async function readSecret(source: SecretSource, env: Readonly<Record<string, string | undefined>>, oneLine = true): Promise<{ value: string } | { problem: string }> {
  if ('env' in source) {
    const value = env[source.env];
    const name = shownName(source.env);
    if (value === undefined) return { problem: `expected the environment variable ${name} to be set, but it is not` };
    if (value === '') return { problem: `expected the environment variable ${name} to hold a secret, but it is empty` };
    if (oneLine && CONTROL.test(value)) return { problem: `the environment variable ${name}: ${ONE_LINE}` };
    return { value };
  }
  let text: string;
  try {
    text = await readFile(source.file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return { problem: `expected a readable secret file ${shownFile(source)}, got ${code}` };
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') return { problem: `expected the secret file ${source.file} to hold a secret, but it is empty` };
  if (oneLine && CONTROL.test(value)) return { problem: `the secret file ${source.file}: ${ONE_LINE}` };
  return { value };
}
