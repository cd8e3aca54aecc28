import { readFile } from 'node:fs/promises';

export type SecretSource = { env: string } | { file: string };

/** Reads a secret from an environment variable or a file (one trailing newline ignored). */
export async function readSecret(source: SecretSource, env: Readonly<Record<string, string | undefined>>): Promise<{ value: string } | { problem: string }> {
  if ('env' in source) {
    const value = env[source.env];
    if (value === undefined) return { problem: `expected the environment variable ${source.env} to be set, but it is not` };
    if (value === '') return { problem: `expected the environment variable ${source.env} to hold a secret, but it is empty` };
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
