import express, { type ErrorRequestHandler, type Express } from 'express';
import type { Logger } from 'pino';

/**
 * Everything that is not a webhook: health now, the operator API and pages later.
 * Webhooks take the lean node:http path in server.ts and never pass through here.
 */
export function createApiApp(options: { logger: Logger }): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });

  const onError: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
    options.logger.error({ err: error }, 'request failed');
    res.status(500).json({ error: 'internal error' });
  };
  app.use(onError);
  return app;
}
