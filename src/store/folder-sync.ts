import { execFile } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SyncCoalescer } from './sync-coalescer.js';

/**
 * fsyncs a file, or a folder, so that the renames, creations and removals in it survive a
 * crash or power loss.
 */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const folders = new Map<string, SyncCoalescer>();

/**
 * Makes the changes made in `dir` so far durable: resolves after an fsync of the folder that
 * started after the call. Calls for one folder while its fsync is in flight share the next one.
 */
export function syncFolder(dir: string): Promise<void> {
  const coalescer = folders.get(dir) ?? new SyncCoalescer(() => fsyncPath(dir));
  folders.set(dir, coalescer);
  const done = coalescer.request();
  const forget = () => {
    if (!coalescer.busy && folders.get(dir) === coalescer) folders.delete(dir);
  };
  done.then(forget, forget);
  return done;
}

/**
 * Makes everything written to the file system that holds `path` durable, with one `syncfs`
 * (coreutils `sync --file-system`): far cheaper than an fsync per file when there are
 * thousands of them. Rejects when `sync` is missing or fails; the caller then fsyncs each file.
 */
export async function syncFileSystem(path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('sync', ['--file-system', path], { timeout: 30_000 }, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * `mkdir -p`, with each folder it makes synced into its parent, so that the folder (and what
 * is later acknowledged into it) survives a power cut.
 */
export async function makeFolderDurably(path: string): Promise<void> {
  const created = await mkdir(path, { recursive: true });
  for (let folder = path; created !== undefined; folder = dirname(folder)) {
    await syncFolder(dirname(folder));
    if (folder === created || dirname(folder) === folder) break;
  }
}
