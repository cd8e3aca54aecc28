import { access, constants } from 'node:fs/promises';
import express, { type ErrorRequestHandler, type Express } from 'express';
import type { Logger } from 'pino';
import { requireToken } from '../api/auth.js';
import { apiRoutes, type ApiOptions } from '../api/routes.js';
import type { Metrics } from '../metrics/metrics.js';
import { uiRoutes } from '../ui/routes.js';

export interface ApiAppOptions extends ApiOptions {
  logger: Logger;
  metrics: Metrics;
}

/**
 * Everything that is not a webhook: health, readiness, metrics, the operator API and the
 * status page. Webhooks take the lean node:http path in server.ts and never pass through here.
 */
export function createApiApp(options: ApiAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const tokens = () => options.config().api;

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', (_req, res) => {
    const failure = options.store.lastFailure;
    if (failure) {
      const cause = (failure.error as NodeJS.ErrnoException).code ?? failure.error.message;
      const reason =
        failure.during === 'save'
          ? `the last run record could not be saved: ${cause}`
          : failure.during === 'place'
            ? `run files could not be put in place from the journal (it keeps them): ${cause}`
            : `run files could not be made durable (fsync: ${cause}); the journal keeps them until a restart writes them again: check the disk, then restart`;
      res.status(503).json({ status: 'not ready', reason });
      return;
    }
    access(options.config().stateDir, constants.W_OK).then(
      () => res.json({ status: 'ready', jobs: options.jobs().jobs.length }),
      (error: NodeJS.ErrnoException) => res.status(503).json({ status: 'not ready', reason: `state_dir is not writable: ${error.code ?? 'unknown'}` }),
    );
  });

  app.get('/metrics', requireToken(tokens, { browser: false }), (_req, res, next) => {
    options.metrics.render().then(({ contentType, body }) => res.type(contentType).send(body), next);
  });

  app.use('/api', requireToken(tokens, { browser: false }), apiRoutes(options));
  // The status page (/, /runs/:id and its assets); unknown paths fall through to the 404.
  app.use(requireToken(tokens, { browser: true }), uiRoutes(options));

  app.use((req, res) => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });

  const onError: ErrorRequestHandler = (error: unknown, _req, res, _next) => {
    const status = (error as { status?: number; type?: string }).status;
    if (status !== undefined && status >= 400 && status < 500) {
      res.status(status).json({ error: (error as { type?: string }).type === 'entity.parse.failed' ? 'expected a JSON body' : 'bad request' });
      return;
    }
    options.logger.error({ err: error }, 'request failed');
    res.status(500).json({ error: 'internal error' });
  };
  app.use(onError);
  return app;
}
