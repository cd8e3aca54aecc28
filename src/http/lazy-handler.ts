import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { sendJson } from './respond.js';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * A handler made on the first request that needs it, so that what it loads (express for the
 * API and the pages) costs nothing at start and nothing to a daemon that only takes webhooks.
 * If making it fails, that request gets 500 and the next one tries again.
 */
export function lazyHandler(make: () => Promise<RequestHandler>, logger: Logger): RequestHandler {
  let made: Promise<RequestHandler> | undefined;
  return (req, res) => {
    made ??= make();
    made.then(
      (handler) => handler(req, res),
      (error: unknown) => {
        made = undefined;
        logger.error({ err: error }, 'could not load the request handler');
        if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      },
    );
  };
}
