import { randomBytes } from 'node:crypto';
import { open, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A file system error that says the file or folder is not there. */
export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

let tempPrefix: string | undefined;
let tempCount = 0;

/**
 * A temporary file beside `file`, named so that the stores remove it at start
 * (`.<name>.<random per process>-<count>.tmp`): unique without asking for randomness each time.
 */
function tempName(file: string): string {
  tempPrefix ??= randomBytes(6).toString('hex');
  tempCount += 1;
  return join(dirname(file), `.${basename(file)}.${tempPrefix}-${tempCount.toString(36)}.tmp`);
}

/**
 * Replaces `file` with `data` through a temporary file and a rename, so that a reader, and the
 * file after a crash of the process, sees either the old or the new content. Nothing is forced
 * to disk: after a power cut the file may be old, new, empty or missing, until the caller has
 * fsynced it and its folder (the journal covers that time for run records).
 */
export async function replaceFile(file: string, data: string | Buffer): Promise<void> {
  const temp = tempName(file);
  const handle = await open(temp, 'wx', 0o600);
  try {
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
}

/**
 * Writes a file that should not exist yet in place, without a temporary file (a reader may
 * see it half-written); if it exists after all, replaces it atomically. Nothing is forced to disk.
 */
export async function createFile(file: string, data: string | Buffer): Promise<void> {
  await writeFile(file, data, { flag: 'wx', mode: 0o600 }).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return replaceFile(file, data);
  });
}

/** Deletes a file; one that is already gone is fine. */
export async function removeFile(file: string): Promise<void> {
  await unlink(file).catch((error: unknown) => {
    if (!isNotFound(error)) throw error;
  });
}
