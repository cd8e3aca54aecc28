import express, { type Router } from 'express';
import type { Config } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import type { JobIndex } from '../jobs/job-index.js';
import { expandCommit, queueManualDeploy } from '../jobs/manual-deploy.js';
import { FINAL_STATUSES, RUN_STATUSES, type RunRecord } from '../jobs/run-record.js';
import type { RunQueue } from '../jobs/run-queue.js';
import type { RunStore } from '../store/run-store.js';
import { sendLog } from './follow-log.js';

export interface ApiOptions {
  config: () => Config;
  jobs: () => JobIndex;
  queue: RunQueue;
  store: RunStore;
  env: Readonly<Record<string, string | undefined>>;
}

const MAX_LIMIT = 500;

/** Every job with its state, last run and deployed commit: for the API and the status page. */
export function jobSummaries(options: ApiOptions) {
  return options.jobs().jobs.map((job) => {
    const { running, pending } = options.queue.snapshot(job.name);
    const deployed = options.store.latest(job.name, 'succeeded');
    return {
      name: job.name,
      provider: job.provider,
      repo: job.repo,
      /** A generic job's event source (its repo is empty); null for a Git host's job. */
      source: job.event?.source ?? null,
      branches: job.branches,
      state: (running ? 'running' : pending ? 'queued' : 'idle') as 'running' | 'queued' | 'idle',
      running: running?.id ?? null,
      queued: pending?.id ?? null,
      lastRun: options.store.latest(job.name) ?? null,
      deployedSha: deployed?.deployedSha ?? null,
      deployedAt: deployed?.finishedAt ?? null,
    };
  });
}

function fail(res: express.Response, status: number, error: string): void {
  res.status(status).json({ error });
}

/** The operator API under /api (authentication is applied by the caller). */
export function apiRoutes(options: ApiOptions): Router {
  const router = express.Router();
  router.use(express.json({ limit: '16kb' }));

  router.get('/jobs', (_req, res) => {
    res.json({ jobs: jobSummaries(options) });
  });

  router.get('/runs', (req, res) => {
    const { job, status, before } = req.query;
    const limit = req.query.limit === undefined ? 50 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return fail(res, 400, `expected limit to be a whole number from 1 to ${MAX_LIMIT}`);
    if (status !== undefined && !RUN_STATUSES.includes(status as never)) return fail(res, 400, `expected status to be one of ${RUN_STATUSES.join(', ')}`);
    for (const [name, value] of Object.entries({ job, before })) if (value !== undefined && typeof value !== 'string') return fail(res, 400, `expected ${name} once`);
    // A misspelt job would otherwise look like one without runs; a job removed from the config still lists its runs.
    if (typeof job === 'string' && options.jobs().get(job) === undefined && options.store.latest(job) === undefined) return fail(res, 404, `no job named ${JSON.stringify(job)}`);
    const runs = options.store.list({ limit, ...(typeof job === 'string' ? { job } : {}), ...(typeof status === 'string' ? { status } : {}), ...(typeof before === 'string' ? { before } : {}) });
    res.json({ runs, next: runs.length === limit ? (runs.at(-1)?.id ?? null) : null });
  });

  router.get('/runs/:id', (req, res) => {
    const run = options.store.get(req.params.id);
    if (!run) return fail(res, 404, `no run ${JSON.stringify(req.params.id)}`);
    res.json({ run });
  });

  router.get('/runs/:id/log', (req, res, next) => {
    const run = options.store.get(req.params.id);
    if (!run) return fail(res, 404, `no run ${JSON.stringify(req.params.id)}`);
    const follow = req.query.follow === '1' || req.query.follow === 'true';
    const offset = req.query.offset ?? '0';
    if (typeof offset !== 'string' || !/^\d{1,15}$/.test(offset)) return fail(res, 400, 'expected offset to be a byte count: the bytes of the log already read');
    sendLog(req, res, run.logPath, { follow, offset: Number(offset), ended: () => FINAL_STATUSES.has((options.store.get(run.id) ?? run).status) }).catch(next);
  });

  router.post('/jobs/:name/deploy', (req, res, next) => {
    const job = options.jobs().get(req.params.name);
    if (!job) return fail(res, 404, `no job named ${JSON.stringify(req.params.name)}`);
    const body = (req.body ?? {}) as Record<string, unknown>;
    for (const key of Object.keys(body)) if (!['ref', 'sha', 'requested_by'].includes(key)) return fail(res, 400, `unknown key ${JSON.stringify(key)}; expected ref, sha or requested_by`);
    for (const key of ['ref', 'sha', 'requested_by']) if (body[key] !== undefined && typeof body[key] !== 'string') return fail(res, 400, `expected ${key} to be a string`);
    const requestedBy = `api${typeof body.requested_by === 'string' ? `: ${body.requested_by}` : ''}`;
    let sha = body.sha as string | undefined;
    try {
      if (sha !== undefined) sha = expandCommit(sha, job.name, options.store.list({ job: job.name, limit: Number.POSITIVE_INFINITY }));
    } catch (error) {
      return fail(res, 400, (error as Error).message);
    }
    queueManualDeploy(options.queue, job, { ref: body.ref as string | undefined, sha, requestedBy }, options.env).then(
      (run: RunRecord) => res.status(202).json({ run: { id: run.id, job: run.job, sha: run.sha, ref: run.ref, exact: run.exact === true } }),
      (error: unknown) => (error instanceof DeployhookError ? fail(res, 400, error.message) : next(error)),
    );
  });

  router.post('/runs/:id/cancel', (req, res) => {
    const run = options.store.get(req.params.id);
    if (!run) return fail(res, 404, `no run ${JSON.stringify(req.params.id)}`);
    // What it was when the cancel came: a queued run is recorded as cancelled at once.
    const status = run.status;
    if (!options.queue.cancel(run.id, 'cancelled by an operator through the API')) return fail(res, 409, `run ${run.id} is ${status === 'running' ? 'finishing' : status}: only queued or running runs can be cancelled`);
    res.status(202).json({ run: { id: run.id, job: run.job, status } });
  });

  router.use((req, res) => fail(res, 404, `no route for ${req.method} /api${req.path}`));
  return router;
}
