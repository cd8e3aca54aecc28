import { readSecret, type SecretSource } from './read-secret.js';

/** The longest token a request's `Authorization: Bearer` header is taken with (src/api/auth.ts). */
export const MAX_API_TOKEN_BYTES = 1024;

/**
 * Why `token` could never be presented as an API token, if so: `Authorization: Bearer <token>`
 * carries visible ASCII only (no space, no second line, nothing a file saved as UTF-16 holds),
 * at most MAX_API_TOKEN_BYTES of it.
 */
export function apiTokenProblem(token: string): string | undefined {
  if (!/^[\x21-\x7e]+$/.test(token)) return 'expected the token as visible ASCII characters only, as an HTTP header carries them (no space, no second line; saved as UTF-8 or ASCII)';
  if (token.length > MAX_API_TOKEN_BYTES) return `expected a token of at most ${MAX_API_TOKEN_BYTES} bytes, got ${token.length}`;
  return undefined;
}

/** An API token read from its source (see readSecret) and checked: the token, or why it cannot be one. */
export async function readApiToken(source: SecretSource, env: Readonly<Record<string, string | undefined>>): Promise<{ value: string } | { problem: string }> {
  // apiTokenProblem's check is stricter, and says more of a token.
  const read = await readSecret(source, env, false);
  if ('problem' in read) return read;
  const problem = apiTokenProblem(read.value);
  return problem === undefined ? read : { problem };
}
