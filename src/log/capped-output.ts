import { open, rm, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

export interface CappedOutputOptions {
  /** The log file's own stream (already open, append mode); capped output is written into it. Do not end it. */
  file: Writable;
  /** Path of the log file: spill segments are created beside it as `${logPath}.tail-a` / `.tail-b`. */
  logPath: string;
  /** Most bytes of output kept; the first half is written through, the last half kept for the end. */
  maxBytes: number;
}

export interface CappedOutput {
  /** Where output goes (write bytes here, respecting backpressure: it is a proper Writable). */
  readonly input: Writable;
  /**
   * Ends input, writes the dropped-bytes marker and the kept tail into `file` if anything was dropped,
   * removes spill files. Resolves when all of it is written to `file` (not ended). Rejects with the first
   * error met writing `file` or the spill files; input is drained (and discarded) after such an error.
   */
  finish(): Promise<{ totalBytes: number; droppedBytes: number }>;
}

const COPY_CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/**
 * Writes the first half of `maxBytes` to the log as it comes and keeps the last half on disk, in two
 * segments of `tailBytes` that take turns: when one fills up, the other is emptied and refilled.
 * The last `tailBytes` of output are then the end of the older segment and all of the current one.
 * Memory use is a few stream buffers, whatever `maxBytes` and the size of the output. An 'error'
 * listener stays on `file`, so a failing disk is reported by `finish` rather than crashing the daemon.
 */
export function createCappedOutput({ file, logPath, maxBytes }: CappedOutputOptions): CappedOutput {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError(`Expected \`maxBytes\` to be a non-negative integer, got \`${String(maxBytes)}\``);
  }
  const headBytes = Math.floor(maxBytes / 2);
  const tailBytes = maxBytes - headBytes;
  const paths = [`${logPath}.tail-a`, `${logPath}.tail-b`] as const;
  const segments: [FileHandle | undefined, FileHandle | undefined] = [undefined, undefined];
  let current: 0 | 1 = 0;
  let currentLength = 0;
  let rotated = false; // the other segment holds a full `tailBytes` of older output
  let totalBytes = 0;
  let lastHeadByte = NEWLINE;
  let failure: Error | undefined;
  let lastWrite: Promise<void> = Promise.resolve();
  const fail = (err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err));
  };
  file.on('error', fail);

  async function toFile(chunk: Buffer): Promise<void> {
    if (failure) return;
    if (file.destroyed || file.writableEnded) return fail(new Error(`Expected the log file ${logPath} to be open for writing, but its stream was closed`));
    let ok = true;
    lastWrite = new Promise((resolve) => {
      ok = file.write(chunk, (err) => {
        if (err) fail(err);
        resolve();
      });
    });
    if (!ok) await drained(file);
  }

  async function spill(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length && !failure; ) {
      if (currentLength === tailBytes) {
        current = current === 0 ? 1 : 0;
        currentLength = 0;
        rotated = true;
        await segments[current]?.truncate(0);
      }
      const handle = (segments[current] ??= await open(paths[current], 'w+', 0o640));
      const length = Math.min(chunk.length - offset, tailBytes - currentLength);
      const { bytesWritten } = await handle.write(chunk, offset, length, currentLength);
      offset += bytesWritten;
      currentLength += bytesWritten;
    }
  }

  async function accept(chunk: Buffer): Promise<void> {
    const start = totalBytes;
    totalBytes += chunk.length;
    if (failure) return; // keep draining so the command is never blocked on a log that cannot be written
    const inHead = Math.max(0, Math.min(chunk.length, headBytes - start));
    if (inHead > 0) {
      lastHeadByte = chunk[inHead - 1] ?? NEWLINE;
      await toFile(chunk.subarray(0, inHead));
    }
    if (inHead < chunk.length && tailBytes > 0) await spill(chunk.subarray(inHead));
  }

  async function copy(handle: FileHandle | undefined, from: number, to: number): Promise<void> {
    for (let position = from; handle && position < to && !failure; ) {
      const length = Math.min(COPY_CHUNK_BYTES, to - position);
      const { bytesRead, buffer } = await handle.read(Buffer.allocUnsafe(length), 0, length, position);
      if (bytesRead === 0) throw new Error(`Expected ${to - position} more bytes in the spill file of ${logPath}, but it ended early`);
      position += bytesRead;
      await toFile(buffer.subarray(0, bytesRead));
    }
  }

  let cleaned: Promise<unknown> | undefined;
  const cleanUp = () =>
    (cleaned ??= Promise.all(segments.map((handle) => handle?.close().catch(fail))).then(() => Promise.all(paths.map((path) => rm(path, { force: true }).catch(fail)))));

  async function complete(): Promise<void> {
    try {
      const droppedBytes = Math.max(0, totalBytes - maxBytes);
      if (droppedBytes > 0) {
        const newline = headBytes > 0 && lastHeadByte !== NEWLINE ? '\n' : '';
        await toFile(Buffer.from(`${newline}[deployhook] ... ${droppedBytes} bytes of output dropped here (max_log_bytes is ${maxBytes}); the last ${tailBytes} bytes follow ...\n`));
      }
      const older = current === 0 ? 1 : 0;
      if (rotated) await copy(segments[older], currentLength, tailBytes);
      await copy(segments[current], 0, currentLength);
      await lastWrite;
    } catch (err) {
      fail(err);
    } finally {
      await cleanUp();
    }
  }

  // Callbacks never carry an error: an 'error' event here could crash a daemon nobody listens for.
  const settle = (work: Promise<void>, callback: () => void) => void work.catch(fail).then(callback);
  const input = new Writable({
    write: (chunk: Buffer, _encoding, callback) => settle(accept(chunk), () => callback()),
    writev: (chunks, callback) => settle(accept(Buffer.concat(chunks.map(({ chunk }) => chunk as Buffer))), () => callback()),
    final: (callback) => settle(complete(), () => callback()),
  });
  input.on('error', fail);

  let finishing: Promise<{ totalBytes: number; droppedBytes: number }> | undefined;
  return {
    input,
    finish: () =>
      (finishing ??= (async () => {
        input.end();
        await finished(input).catch(fail);
        await cleanUp();
        if (failure) throw failure;
        return { totalBytes, droppedBytes: Math.max(0, totalBytes - maxBytes) };
      })()),
  };
}

/** Resolves when `stream` can take more, or will never take more (closed after an error). */
function drained(stream: Writable): Promise<void> {
  const events = ['drain', 'error', 'close'];
  return new Promise((resolve) => {
    const done = () => {
      events.forEach((event) => stream.off(event, done));
      resolve();
    };
    events.forEach((event) => stream.on(event, done));
  });
}
