import express, { type Response, type Router } from 'express';
import { jobSummaries, type ApiOptions } from '../api/routes.js';
import { ASSETS } from './assets.js';
import { indexPage, missingPage, runPage } from './pages.js';

const RECENT_RUNS = 20;
const HTML = 'text/html; charset=utf-8';

/** Everything the pages load comes from this origin; nothing inline, no framing. */
export const CONTENT_SECURITY_POLICY = "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

function send(res: Response, status: number, contentType: string, body: string): void {
  res
    .status(status)
    .set({
      'content-type': contentType,
      'content-security-policy': CONTENT_SECURITY_POLICY,
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    })
    .send(body);
}

/**
 * The status page: `/` (jobs and recent runs), `/runs/:id` (a run and its live log) and the
 * two assets. Authentication is applied by the caller; any other path goes on to `next()`.
 */
export function uiRoutes(options: ApiOptions): Router {
  const router = express.Router();

  router.get('/', (_req, res) => {
    send(res, 200, HTML, indexPage(jobSummaries(options), options.store.list({ limit: RECENT_RUNS }), Date.now()));
  });

  router.get('/runs/:id', (req, res) => {
    // Every URL on the page is relative to its folder: /runs/<id>/ would put it a folder down.
    if (req.path.endsWith('/')) return res.redirect(301, `../${encodeURIComponent(req.params.id)}`);
    const run = options.store.get(req.params.id);
    if (!run) return send(res, 404, HTML, missingPage(`There is no run ${JSON.stringify(req.params.id)}: it may have been pruned (keep_runs).`));
    send(res, 200, HTML, runPage(run, Date.now()));
  });

  for (const [path, asset] of ASSETS) {
    router.get(path, (_req, res) => send(res, 200, asset.contentType, asset.body));
  }
  return router;
}
