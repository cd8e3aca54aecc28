import { connect } from 'node:net';

/** One header line as sent; a name may appear more than once, in any case. */
export type RawHeader = readonly [name: string, value: string];

export interface RawRequest {
  method: string;
  path: string;
  headers: readonly RawHeader[];
  /** Sent as is after the head. Ignored when `chunks` is given. */
  body?: Buffer | string;
  /**
   * Sent with `Transfer-Encoding: chunked`, one chunk at a time, each after the previous
   * one was written; sending stops as soon as a reply has arrived.
   */
  chunks?: readonly Buffer[];
  /** Whether to add `Content-Length` for `body` when `headers` has none (default true). */
  contentLength?: boolean;
}

export interface RawResponse {
  /** 0 when the connection closed without a reply. */
  status: number;
  headers: Record<string, string>;
  body: string;
}

function hasHeader(headers: readonly RawHeader[], name: string): boolean {
  return headers.some(([key]) => key.toLowerCase() === name);
}

/** The request head, byte for byte: `Host` and `Connection: close` are added unless given. */
export function requestHead(request: RawRequest, host: string): Buffer {
  const headers: RawHeader[] = [];
  if (!hasHeader(request.headers, 'host')) headers.push(['Host', host]);
  if (!hasHeader(request.headers, 'connection')) headers.push(['Connection', 'close']);
  headers.push(...request.headers);
  if (request.chunks !== undefined) {
    if (!hasHeader(request.headers, 'transfer-encoding')) headers.push(['Transfer-Encoding', 'chunked']);
  } else if (request.contentLength !== false && !hasHeader(request.headers, 'content-length') && !hasHeader(request.headers, 'transfer-encoding')) {
    headers.push(['Content-Length', String(Buffer.byteLength(request.body ?? ''))]);
  }
  const lines = [`${request.method} ${request.path} HTTP/1.1`, ...headers.map(([name, value]) => `${name}: ${value}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd === -1) break;
    const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** Parses the first response on a connection; `undefined` while its head is incomplete. */
function parseResponse(data: Buffer): RawResponse | undefined {
  const headEnd = data.indexOf('\r\n\r\n');
  if (headEnd === -1) return undefined;
  const [statusLine = '', ...headerLines] = data.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = data.subarray(headEnd + 4);
  const body = headers['transfer-encoding']?.toLowerCase() === 'chunked' ? dechunk(rest) : rest.subarray(0, Number(headers['content-length'] ?? rest.length));
  return { status, headers, body: body.toString('utf8') };
}

/**
 * Sends one HTTP/1.1 request over a plain TCP socket, exactly as described (duplicate
 * headers, raw bytes, a Content-Length that does not match, no body at all), and reads
 * the reply until the server closes the connection.
 */
export function sendRaw(port: number, request: RawRequest, timeoutMs = 15_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    let replied = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply to ${request.method} ${request.path} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      replied = true;
    });
    // A server that replies before reading the whole body may reset the connection while
    // the rest is still being sent: the reply already received is what counts.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const data = Buffer.concat(received);
      resolve(parseResponse(data) ?? { status: 0, headers: {}, body: data.toString('latin1') });
    });
    socket.on('connect', () => {
      socket.write(requestHead(request, `127.0.0.1:${port}`));
      if (request.chunks === undefined) {
        if (request.body !== undefined && Buffer.byteLength(request.body) > 0) socket.write(request.body);
        return;
      }
      const chunks = [...request.chunks];
      const next = () => {
        const chunk = chunks.shift();
        if (replied || socket.destroyed) return;
        if (chunk === undefined) {
          socket.write('0\r\n\r\n');
          return;
        }
        socket.write(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]), () => setImmediate(next));
      };
      next();
    });
  });
}
