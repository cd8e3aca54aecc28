import { open, type FileHandle } from 'node:fs/promises';
import type { Request, Response } from 'express';

const POLL_MS = 200;
const CHUNK_BYTES = 64 * 1024;

/**
 * Sends a run's log from byte `offset` on; with `follow`, keeps sending what is appended until
 * the run has ended and everything is sent. Works for a queued run whose log does not exist
 * yet. A run log is only ever appended to, so a reader that lost its stream asks again from
 * the bytes it has. The file is read through one handle once it exists, so a log deleted while
 * it is followed (its run pruned) is still sent whole.
 */
export async function sendLog(req: Request, res: Response, path: string, options: { follow: boolean; offset: number; ended: () => boolean }): Promise<void> {
  // Which byte the answer starts at: a reader whose `offset` a proxy dropped can tell.
  res.status(200).set({ 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-log-offset': String(options.offset) });
  // HEAD: the headers alone, without reading a log of up to max_log_bytes to throw it away.
  if (req.method === 'HEAD') return void res.end();
  const follow = options.follow;
  // A proxy that buffers responses (nginx does by default) would hold the live output back.
  if (follow) res.set('x-accel-buffering', 'no').flushHeaders();
  let closed = false;
  req.on('close', () => {
    closed = true;
  });
  let offset = options.offset;
  let handle: FileHandle | undefined;
  const buffer = Buffer.alloc(CHUNK_BYTES);
  try {
    for (;;) {
      const done = options.ended();
      handle ??= await open(path, 'r').catch(() => undefined);
      for (;;) {
        if (!handle || closed) break;
        const { bytesRead } = await handle.read(buffer, 0, CHUNK_BYTES, offset);
        if (bytesRead === 0 || closed) break;
        offset += bytesRead;
        if (!res.write(Buffer.from(buffer.subarray(0, bytesRead))) && !res.destroyed) {
          // A client that went away never drains: stop waiting when the response closes.
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off('drain', done);
              res.off('close', done);
              resolve();
            };
            res.once('drain', done);
            res.once('close', done);
          });
        }
      }
      if (!follow || done || closed) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    await handle?.close();
  }
  res.end();
}
