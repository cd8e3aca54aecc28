import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { TlsOptions } from 'node:tls';
import type { Logger } from 'pino';
import { sendJson } from './respond.js';

/** `/hooks/<provider>`, or `/hooks/<provider>/<source>` for generic events. */
const HOOK_PATH = /^\/hooks\/([a-z][a-z0-9-]*)(?:\/([A-Za-z0-9._-]{1,100}))?\/?$/;

export interface ServerOptions {
  hooks: (req: IncomingMessage, res: ServerResponse, provider: string, source?: string) => Promise<void>;
  api: (req: IncomingMessage, res: ServerResponse) => void;
  logger: Logger;
  /** HTTPS (and mutual TLS with a client CA) when given; plain HTTP otherwise. */
  tls?: TlsOptions;
  maxConnections: number;
  /** A client must send all its headers within this, and the whole request within requestTimeoutMs. */
  headersTimeoutMs: number;
  requestTimeoutMs: number;
}

/**
 * One listener, two roads: `/hooks/*` goes straight to the lean webhook handler on
 * node:http (a path there that names no provider gets 404), everything else to the express
 * app. `/healthz` is answered here too, so a health check never waits for the express app to
 * load.
 */
export function createHttpServer(options: ServerOptions): Server {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    const match = HOOK_PATH.exec(path);
    if (!match?.[1]) {
      // A webhook sent to a wrong path under /hooks is told so, not asked for the API's token.
      // Its body is never read: the connection closes, rather than node reading the rest of it.
      if (path === '/hooks' || path.startsWith('/hooks/')) sendJson(res, 404, { error: 'no such path: expected /hooks/<provider>, or /hooks/generic/<source>' }, { connection: 'close' });
      else options.api(req, res);
      return;
    }
    options.hooks(req, res, match[1], match[2]).catch((error: unknown) => {
      options.logger.error({ err: error }, 'webhook handler failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
        res.end('{"error":"internal error"}');
      } else {
        res.destroy();
      }
    });
  };
  // Slow or stalled clients are dropped: timeouts are checked every second, not every 30.
  const limits = { headersTimeout: options.headersTimeoutMs, requestTimeout: options.requestTimeoutMs, connectionsCheckingInterval: 1_000, keepAliveTimeout: 5_000 };
  const server: Server = options.tls ? createHttps({ ...options.tls, ...limits }, handle) : createHttp(limits, handle);
  server.maxConnections = options.maxConnections;
  server.headersTimeout = options.headersTimeoutMs;
  server.requestTimeout = options.requestTimeoutMs;
  server.on('tlsClientError', (error: NodeJS.ErrnoException) => options.logger.info({ reason: error.code ?? error.message }, 'TLS handshake refused'));
  return server;
}
