import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { GitRunner } from './git-runner.js';

/**
 * Per checkout: the remote its `origin` was last confirmed to be, and how its `.git/config`
 * looked then. git rewrites that file through a lock file and a rename, so any change to it
 * (a `remote set-url` by hand, a new clone) gives it a new inode and change time.
 */
const confirmed = new Map<string, { remote: string; config: string }>();

/** Synchronous: a `stat` takes microseconds, a trip through node's thread pool before git ~1 ms. */
function configStamp(checkout: string): string | undefined {
  let info;
  try {
    info = statSync(join(checkout, '.git', 'config'), { bigint: true, throwIfNoEntry: false });
  } catch {
    return undefined;
  }
  return info === undefined ? undefined : `${info.ino}:${info.size}:${info.ctimeNs}:${info.mtimeNs}`;
}

/** Records that `origin` is `remote` in this checkout (after a clone or a check). */
export async function rememberOrigin(checkout: string, remote: string): Promise<void> {
  const config = configStamp(checkout);
  if (config === undefined) confirmed.delete(checkout);
  else confirmed.set(checkout, { remote, config });
}

/**
 * Points `origin` at the configured remote (the config may have changed it since the clone).
 * git is asked only when the remote or the checkout's `.git/config` changed since the last
 * time: once per checkout after a start, and after a reload that changed `remote`.
 */
export async function pointOriginAt(git: GitRunner, checkout: string, remote: string): Promise<void> {
  const known = confirmed.get(checkout);
  if (known !== undefined && known.remote === remote && known.config === configStamp(checkout)) return;
  const current = await git.query(['config', '--get', 'remote.origin.url']);
  if (current === undefined) {
    await git.step('remote add', ['remote', 'add', '--', 'origin', remote]);
  } else if (current !== remote) {
    await git.step('remote set-url', ['remote', 'set-url', '--', 'origin', remote]);
  }
  await rememberOrigin(checkout, remote);
}
