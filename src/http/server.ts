import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';

const HOOK_PATH = /^\/hooks\/([a-z][a-z0-9-]*)\/?$/;

export interface ServerOptions {
  hooks: (req: IncomingMessage, res: ServerResponse, provider: string) => Promise<void>;
  api: (req: IncomingMessage, res: ServerResponse) => void;
  logger: Logger;
}

/**
 * One listener, two roads: `/hooks/*` goes straight to the lean webhook handler on
 * node:http, everything else to the express app.
 */
export function createHttpServer(options: ServerOptions): Server {
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const match = HOOK_PATH.exec(query === -1 ? url : url.slice(0, query));
    if (!match?.[1]) {
      options.api(req, res);
      return;
    }
    options.hooks(req, res, match[1]).catch((error: unknown) => {
      options.logger.error({ err: error }, 'webhook handler failed');
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json', connection: 'close' });
        res.end('{"error":"internal error"}');
      } else {
        res.destroy();
      }
    });
  });
  // Slow or stalled clients are dropped; the numbers are generous for real Git hosts.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;
  return server;
}
