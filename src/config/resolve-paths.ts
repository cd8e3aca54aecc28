import { isAbsolute, normalize, resolve, sep } from 'node:path';

/** Resolves a config path against the folder of the file that names it. */
export function resolveConfigPath(baseDir: string, path: string): string {
  return resolve(baseDir, path);
}

/** URLs (`https://`, `ssh://`, `file://`) and scp-style `user@host:path` stay as written; anything else is a local path. */
export function resolveRemote(baseDir: string, remote: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(remote)) return remote;
  const colon = remote.indexOf(':');
  const slash = remote.indexOf('/');
  if (colon > 0 && (slash === -1 || colon < slash)) return remote;
  return resolve(baseDir, remote);
}

/** A folder inside the checkout, or undefined when it would leave it. */
export function safeRelativeFolder(path: string): string | undefined {
  if (isAbsolute(path)) return undefined;
  const normalized = normalize(path);
  if (normalized === '..' || normalized.startsWith(`..${sep}`)) return undefined;
  return normalized;
}
