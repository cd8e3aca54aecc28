import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FINAL_STATUSES } from '../jobs/run-record.js';
import type { RunRecord } from '../jobs/run-record.js';

export type DeliveryOutcome = 'queued' | 'ignored' | 'duplicate' | 'rejected' | 'failed';

export interface MetricsOptions {
  /** Runs waiting per job right now (read at scrape time). */
  queueDepth: () => number;
  /** Records known at start (from disk), so last-success and deployed-commit survive restarts. */
  initialRuns?: readonly RunRecord[];
}

export interface Metrics {
  readonly registry: Registry;
  delivery(provider: string, outcome: DeliveryOutcome): void;
  /** Call once per run that reached a final status (succeeded, failed, timed_out, cancelled, superseded, interrupted). */
  runFinished(run: RunRecord): void;
  /** The text exposition and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Deploys take seconds to an hour, so the default sub-second buckets would say nothing. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

interface LastSuccess {
  finishedAtMs: number;
  commit: string;
}

/** The daemon's metrics on a private registry, so that several daemons in one process (tests) stay apart. */
export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'deployhook_' });

  const deliveries = new Counter({
    name: 'deployhook_deliveries_total',
    help: 'Webhook deliveries received, by provider and what became of them.',
    labelNames: ['provider', 'outcome'] as const,
    registers: [registry],
  });
  const runs = new Counter({
    name: 'deployhook_runs_total',
    help: 'Runs that reached a final status, by job and status.',
    labelNames: ['job', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'deployhook_run_duration_seconds',
    help: 'How long runs took from start to finish, by job and final status.',
    labelNames: ['job', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'deployhook_queue_depth',
    help: 'Runs waiting to start, over all jobs.',
    registers: [registry],
    collect(this: Gauge) {
      this.set(options.queueDepth());
    },
  });
  const lastSuccessGauge = new Gauge({
    name: 'deployhook_last_success_timestamp_seconds',
    help: 'Unix time at which the latest successful run of the job finished.',
    labelNames: ['job'] as const,
    registers: [registry],
  });
  const deployedCommit = new Gauge({
    name: 'deployhook_deployed_commit_info',
    help: 'The commit the latest successful run of the job deployed; always 1.',
    labelNames: ['job', 'commit'] as const,
    registers: [registry],
  });

  const lastSuccess = new Map<string, LastSuccess>();

  /** Moves last-success and deployed-commit forward; an older success arriving late changes nothing. */
  function recordSuccess(run: RunRecord): void {
    const finishedAtMs = Date.parse(run.finishedAt ?? '');
    if (run.status !== 'succeeded' || Number.isNaN(finishedAtMs)) return;
    const previous = lastSuccess.get(run.job);
    if (previous && previous.finishedAtMs > finishedAtMs) return;
    const commit = run.deployedSha ?? run.sha;
    if (previous && previous.commit !== commit) deployedCommit.remove({ job: run.job, commit: previous.commit });
    lastSuccess.set(run.job, { finishedAtMs, commit });
    lastSuccessGauge.set({ job: run.job }, finishedAtMs / 1000);
    deployedCommit.set({ job: run.job, commit }, 1);
  }

  for (const run of options.initialRuns ?? []) recordSuccess(run);

  return {
    registry,
    delivery(provider, outcome) {
      deliveries.inc({ provider, outcome });
    },
    runFinished(run) {
      if (!FINAL_STATUSES.has(run.status)) return;
      runs.inc({ job: run.job, status: run.status });
      if (run.startedAt !== undefined && run.durationMs !== undefined) {
        duration.observe({ job: run.job, status: run.status }, run.durationMs / 1000);
      }
      recordSuccess(run);
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
