import { execFile } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { SyncCoalescer } from './sync-coalescer.js';

/**
 * An fsync or syncfs that failed: what was written may not be on disk, and Linux reports that
 * once, so a second try would succeed without writing it (see JournaledFolder). Other failures
 * (a file that could not be opened) change nothing written, and may be tried again.
 */
export class WriteBackError extends Error {
  readonly code: string | undefined;
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = 'WriteBackError';
    this.code = (cause as NodeJS.ErrnoException).code;
  }
}

/**
 * fsyncs a file, or a folder, so that the renames, creations and removals in it survive a
 * crash or power loss. A failed fsync rejects with a WriteBackError.
 */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync().catch((error: unknown) => {
      throw new WriteBackError(`fsync of ${path} failed: ${(error as Error).message}`, error);
    });
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
 * thousands of them. Rejects when `sync` is missing or cannot run (the caller then fsyncs each
 * file), and with a WriteBackError when it ran and failed.
 */
export async function syncFileSystem(path: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    execFile('sync', ['--file-system', path], { timeout: 30_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else if (typeof error.code === 'number') reject(new WriteBackError(`sync --file-system ${path} failed: ${stderr.trim()}`, Object.assign(new Error(stderr.trim()), { code: 'EIO' })));
      else reject(error);
    });
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
