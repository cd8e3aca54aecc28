import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; status: 400 | 413 | 503; reason: string };

/**
 * The bytes of request bodies held in memory at once, across all requests. Every body is
 * unverified while it is read, and a client can hold one open (all but its last byte) until
 * the request timeout: without a shared limit, `max_connections` bodies of `max_body_bytes`
 * each could be held at once.
 */
export class BodyBudget {
  #held = 0;

  /** Takes `bytes` from the budget of `limit`; false, taking nothing, when they do not fit. */
  take(bytes: number, limit: number): boolean {
    if (this.#held + bytes > limit) return false;
    this.#held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.#held -= bytes;
  }
}

export interface BodyLimits {
  /** The most one body may be. */
  limit: number;
  /** Shared by every request being read, and how much it may hold. */
  budget?: { pool: BodyBudget; bytes: number };
}

const BUSY = 'too many request bodies are being received at once; retry shortly';

/**
 * Reads a request body up to `limit` bytes. A declared Content-Length over the limit is
 * refused before a byte is read; a body that grows past it (chunked) is cut off. With a
 * budget, a body that would take the bodies in memory past it is refused (503) and the rest
 * of it dropped as it arrives; a body's bytes go back to the budget once its read is settled.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<BodyResult> {
  const { limit, budget } = limits;
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
      budget?.pool.give(size);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > limit) {
        settle({ ok: false, status: 413, reason: `expected a body of at most ${limit} bytes` });
        req.pause();
        return;
      }
      if (budget && !budget.pool.take(chunk.length, budget.bytes)) {
        // Not paused: the rest is read and dropped, so that the client gets the 503 (closing
        // on bytes it has sent and nobody read would reset the connection instead).
        settle({ ok: false, status: 503, reason: BUSY });
        return;
      }
      size += chunk.length;
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => settle({ ok: true, body: Buffer.concat(chunks, size) }));
    req.on('error', () => settle({ ok: false, status: 400, reason: 'the request body could not be read' }));
    req.on('aborted', () => settle({ ok: false, status: 400, reason: 'the request was aborted' }));
    // A socket closed under a body still being read (the request timeout) gives its bytes back too.
    req.on('close', () => settle({ ok: false, status: 400, reason: 'the connection closed before the body ended' }));
  });
}
