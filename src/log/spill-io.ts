import { closeSync, openSync, readSync, rmSync, writeSync, writevSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';

/** One spill segment, open for reading and writing at given positions. */
export interface SpillHandle {
  /** Writes all of `buffer` at `position`. */
  write(buffer: Buffer, position: number): Promise<unknown> | undefined;
  /** Writes `buffers` at `position`; resolves with how many bytes were written. */
  writev(buffers: Buffer[], position: number): Promise<number> | number;
  /** Reads into `buffer` from `position`; resolves with how many bytes were read. */
  read(buffer: Buffer, position: number): Promise<number> | number;
  close(): Promise<void> | undefined;
}

/**
 * How a capped log reaches its spill segments: through node's thread pool on the main thread,
 * with synchronous calls on the thread that captures a flood of output (capture-thread.ts).
 */
export interface SpillIo {
  /** Opens a segment: emptied or made when `existing` is false. */
  open(path: string, existing: boolean): Promise<SpillHandle> | SpillHandle;
  /** Removes a segment; nothing when it is gone already. */
  remove(path: string): Promise<void> | undefined;
}

export const promiseSpillIo: SpillIo = {
  async open(path, existing) {
    const handle = await open(path, existing ? 'r+' : 'w+', 0o640);
    return {
      write: (buffer, position) => handle.write(buffer, 0, buffer.length, position),
      writev: async (buffers, position) => (await handle.writev(buffers, position)).bytesWritten,
      read: async (buffer, position) => (await handle.read(buffer, 0, buffer.length, position)).bytesRead,
      close: () => handle.close(),
    };
  },
  remove: (path) => rm(path, { force: true }),
};

export const syncSpillIo: SpillIo = {
  open(path, existing) {
    const fd = openSync(path, existing ? 'r+' : 'w+', 0o640);
    return {
      write(buffer, position) {
        writeSync(fd, buffer, 0, buffer.length, position);
        return undefined;
      },
      writev: (buffers, position) => writevSync(fd, buffers, position),
      read: (buffer, position) => readSync(fd, buffer, 0, buffer.length, position),
      close() {
        closeSync(fd);
        return undefined;
      },
    };
  },
  remove(path) {
    rmSync(path, { force: true });
    return undefined;
  },
};
