import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Deploys take seconds to an hour, so the default sub-second buckets would say nothing. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];

export interface LastSuccess {
  finishedAtMs: number;
  commit: string;
}

/** The daemon's metrics as prom-client objects, on a registry of their own. */
export interface Instruments {
  registry: Registry;
  deliveries: Counter<'provider' | 'outcome'>;
  runs: Counter<'job' | 'status'>;
  duration: Histogram<'job' | 'status'>;
  /** Shows a job's latest success (replacing `previous`, whose commit series is dropped). */
  showSuccess(job: string, success: LastSuccess, previous: LastSuccess | undefined): void;
}

/** How often the event loop's delay is sampled for the default metrics' `nodejs_eventloop_lag_*` (ms). */
const EVENT_LOOP_SAMPLE_MS = 100;

/** Makes every metric, with the process metrics prom-client collects by default. */
export function createInstruments(client: Pick<typeof PromClient, 'Counter' | 'Gauge' | 'Histogram' | 'Registry' | 'collectDefaultMetrics'>, queueDepth: () => number): Instruments {
  const { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } = client;
  const registry = new Registry();
  // The event loop's delay is sampled by a timer every `eventLoopMonitoringPrecision` ms
  // (prom-client's default, 10 ms, woke an idle daemon 100 times a second, for good, once the
  // first run had loaded prom-client: ~2 % of a core doing nothing). A tenth of a second still
  // sees every stall worth a metric.
  collectDefaultMetrics({ register: registry, prefix: 'deployhook_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];

  const deliveries = new Counter({
    name: 'deployhook_deliveries_total',
    help: 'Webhook deliveries received, by provider and what became of them.',
    labelNames: ['provider', 'outcome'] as const,
    registers,
  });
  const runs = new Counter({
    name: 'deployhook_runs_total',
    help: 'Runs that reached a final status, by job and status.',
    labelNames: ['job', 'status'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'deployhook_run_duration_seconds',
    help: 'How long runs took from start to finish, by job and final status.',
    labelNames: ['job', 'status'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  });
  new Gauge({
    name: 'deployhook_queue_depth',
    help: 'Runs waiting to start, over all jobs.',
    registers,
    collect(this: Gauge) {
      this.set(queueDepth());
    },
  });
  const lastSuccess = new Gauge({
    name: 'deployhook_last_success_timestamp_seconds',
    help: 'Unix time at which the latest successful run of the job finished.',
    labelNames: ['job'] as const,
    registers,
  });
  const deployedCommit = new Gauge({
    name: 'deployhook_deployed_commit_info',
    help: 'The commit the latest successful run of the job deployed; always 1.',
    labelNames: ['job', 'commit'] as const,
    registers,
  });

  return {
    registry,
    deliveries,
    runs,
    duration,
    showSuccess(job, success, previous) {
      if (previous && previous.commit !== success.commit) deployedCommit.remove({ job, commit: previous.commit });
      lastSuccess.set({ job }, success.finishedAtMs / 1000);
      // A generic job without a remote deploys no commit.
      if (success.commit !== '') deployedCommit.set({ job, commit: success.commit }, 1);
    },
  };
}
