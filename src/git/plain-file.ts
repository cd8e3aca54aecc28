import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

/**
 * The first `maxBytes` of a plain file and its whole size, read synchronously by the daemon
 * (root, with `run_as`) in a folder a command may have changed: a link is not followed, a FIFO
 * does not hold the event loop, and a huge file is not read whole. `missing` when nothing can
 * be opened there; undefined when something other than a plain file is (a link, a FIFO, a
 * folder).
 */
export function readPlainFileStart(path: string | Buffer, maxBytes: number): { bytes: Buffer; size: number } | 'missing' | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const info = fstatSync(fd);
    if (!info.isFile()) return undefined;
    const buffer = Buffer.alloc(Math.min(maxBytes, info.size));
    return { bytes: buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0)), size: info.size };
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ELOOP' ? undefined : 'missing';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
