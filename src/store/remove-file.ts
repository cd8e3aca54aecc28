import { unlink } from 'node:fs/promises';

/** A file system error that says the file or folder is not there. */
export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/** Deletes a file; one that is already gone is fine. */
export async function removeFile(file: string): Promise<void> {
  await unlink(file).catch((error: unknown) => {
    if (!isNotFound(error)) throw error;
  });
}
