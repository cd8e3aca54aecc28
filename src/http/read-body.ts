import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; status: 400 | 413; reason: string };

/**
 * Reads a request body up to `limit` bytes. A declared Content-Length over the limit is
 * refused before a byte is read; a body that grows past it (chunked) is cut off.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.resolve({ ok: false, status: 413, reason: `expected a body of at most ${limit} bytes, got Content-Length ${declared}` });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: BodyResult) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        settle({ ok: false, status: 413, reason: `expected a body of at most ${limit} bytes` });
        req.pause();
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => settle({ ok: true, body: Buffer.concat(chunks, size) }));
    req.on('error', () => settle({ ok: false, status: 400, reason: 'the request body could not be read' }));
    req.on('aborted', () => settle({ ok: false, status: 400, reason: 'the request was aborted' }));
  });
}
