import { open } from 'node:fs/promises';
import type { Request, Response } from 'express';

const POLL_MS = 200;
const CHUNK_BYTES = 64 * 1024;

/**
 * Sends a run's log; with `follow`, keeps sending what is appended until the run has ended
 * and everything is sent. Works for a queued run whose log does not exist yet.
 */
export async function sendLog(req: Request, res: Response, path: string, follow: boolean, ended: () => boolean): Promise<void> {
  res.status(200).set({ 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  if (follow) res.flushHeaders();
  let closed = false;
  req.on('close', () => {
    closed = true;
  });
  let offset = 0;
  const buffer = Buffer.alloc(CHUNK_BYTES);
  for (;;) {
    const done = ended();
    const handle = await open(path, 'r').catch(() => undefined);
    if (handle) {
      try {
        for (;;) {
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
      } finally {
        await handle.close();
      }
    }
    if (!follow || done || closed) break;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  res.end();
}
