import { readFile } from 'node:fs/promises';
import { resolveConfigPath } from './resolve-paths.js';

export type SecretSource = { env: string } | { file: string };

/**
 * The source a `<name>_env` / `<name>_file` pair of config keys names (the schema allows one),
 * with a relative file resolved against `baseDir`, and which of the two keys it came from.
 */
export function secretSource(envName: string | undefined, file: string | undefined, baseDir: string): { key: 'env' | 'file'; source: SecretSource } | undefined {
  if (envName !== undefined) return { key: 'env', source: { env: envName } };
  if (file !== undefined) return { key: 'file', source: { file: resolveConfigPath(baseDir, file) } };
  return undefined;
}

/**
 * A variable's name as messages show it: a name in capitals, as variables are named; anything
 * else may be the secret itself, pasted where its variable's name belongs, and is not shown.
 */
function shownName(name: string): string {
  return /^[A-Z_][A-Z0-9_]{0,63}$/.test(name) ? name : 'named here (not shown: not a name in capitals, as variables are named; is it the secret itself?)';
}

/** Reads a secret from an environment variable or a file (one trailing newline ignored). */
export async function readSecret(source: SecretSource, env: Readonly<Record<string, string | undefined>>): Promise<{ value: string } | { problem: string }> {
  if ('env' in source) {
    const value = env[source.env];
    const name = shownName(source.env);
    if (value === undefined) return { problem: `expected the environment variable ${name} to be set, but it is not` };
    if (value === '') return { problem: `expected the environment variable ${name} to hold a secret, but it is empty` };
    return { value };
  }
  let text: string;
  try {
    text = await readFile(source.file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    return { problem: `expected a readable secret file at ${source.file}, got ${code}` };
  }
  const value = text.replace(/\r?\n$/, '');
  if (value === '') return { problem: `expected the secret file ${source.file} to hold a secret, but it is empty` };
  return { value };
}
