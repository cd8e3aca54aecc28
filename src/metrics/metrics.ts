import type { Registry } from 'prom-client';
import { FINAL_STATUSES } from '../jobs/run-record.js';
import type { RunRecord } from '../jobs/run-record.js';
import { createInstruments, type Instruments, type LastSuccess } from './instruments.js';

export type DeliveryOutcome = 'queued' | 'ignored' | 'duplicate' | 'rejected' | 'failed';

export interface MetricsOptions {
  /** Runs waiting per job right now (read at scrape time). */
  queueDepth: () => number;
  /** Records known at start (from disk), so last-success and deployed-commit survive restarts. */
  initialRuns?: readonly RunRecord[];
}

export interface Metrics {
  /** The private registry; prom-client is loaded when it is first asked for (or at the first scrape). */
  readonly registry: Promise<Registry>;
  delivery(provider: string, outcome: DeliveryOutcome): void;
  /** Call once per run that reached a final status (succeeded, failed, timed_out, cancelled, superseded, interrupted, skipped). */
  runFinished(run: RunRecord): void;
  /** The text exposition and its content type. */
  render(): Promise<{ contentType: string; body: string }>;
}

interface Observation {
  job: string;
  status: string;
  seconds: number;
}

/**
 * The daemon's metrics on a private registry, so that several daemons in one process (tests)
 * stay apart. prom-client is loaded at the first scrape or when the first run finishes (at start
 * when recovery ends one), not otherwise at start: until then deliveries and runs are counted
 * here (per label set; one number per finished run for the durations) and handed over when it
 * loads.
 */
export function createMetrics(options: MetricsOptions): Metrics {
  const lastSuccess = new Map<string, LastSuccess>();
  const deliveries = new Map<string, { labels: { provider: string; outcome: DeliveryOutcome }; count: number }>();
  const runs = new Map<string, { labels: { job: string; status: string }; count: number }>();
  let durations: Observation[] = [];
  let instruments: Instruments | undefined;
  let loading: Promise<Instruments> | undefined;

  function load(): Promise<Instruments> {
    // prom-client is CommonJS: its exports object is the default export, in Node and in the bundle alike.
    loading ??= import('prom-client').then(({ default: client }) => {
      const made = createInstruments(client, options.queueDepth);
      for (const { labels, count } of deliveries.values()) made.deliveries.inc(labels, count);
      for (const { labels, count } of runs.values()) made.runs.inc(labels, count);
      for (const { job, status, seconds } of durations) made.duration.observe({ job, status }, seconds);
      for (const [job, success] of lastSuccess) made.showSuccess(job, success, undefined);
      deliveries.clear();
      runs.clear();
      durations = [];
      instruments = made;
      return made;
    });
    return loading;
  }

  /** Moves last-success and deployed-commit forward; an older success arriving late changes nothing. */
  function recordSuccess(run: RunRecord): void {
    const finishedAtMs = Date.parse(run.finishedAt ?? '');
    if (run.status !== 'succeeded' || Number.isNaN(finishedAtMs)) return;
    const previous = lastSuccess.get(run.job);
    if (previous && previous.finishedAtMs > finishedAtMs) return;
    const success = { finishedAtMs, commit: run.deployedSha ?? run.sha };
    lastSuccess.set(run.job, success);
    instruments?.showSuccess(run.job, success, previous);
  }

  for (const run of options.initialRuns ?? []) recordSuccess(run);

  return {
    get registry() {
      return load().then((made) => made.registry);
    },
    delivery(provider, outcome) {
      if (instruments) {
        instruments.deliveries.inc({ provider, outcome });
        return;
      }
      const key = `${provider} ${outcome}`;
      const counted = deliveries.get(key) ?? { labels: { provider, outcome }, count: 0 };
      counted.count += 1;
      deliveries.set(key, counted);
    },
    runFinished(run) {
      if (!FINAL_STATUSES.has(run.status)) return;
      const labels = { job: run.job, status: run.status };
      const seconds = run.startedAt !== undefined && run.durationMs !== undefined ? run.durationMs / 1000 : undefined;
      if (instruments) {
        instruments.runs.inc(labels);
        if (seconds !== undefined) instruments.duration.observe(labels, seconds);
      } else {
        const key = `${run.job} ${run.status}`;
        const counted = runs.get(key) ?? { labels, count: 0 };
        counted.count += 1;
        runs.set(key, counted);
        if (seconds !== undefined) durations.push({ ...labels, seconds });
        // A run has finished, so the daemon is at work anyway: load prom-client now, so that
        // the durations waiting for it stay few instead of growing until a first scrape.
        load().catch(() => undefined);
      }
      recordSuccess(run);
    },
    async render() {
      const { registry } = await load();
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}
