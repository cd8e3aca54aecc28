import { join } from 'node:path';
import type { Logger } from 'pino';
import type { JobConfig } from '../config/types.js';
import type { PushEvent } from '../providers/types.js';
import type { RunStore } from '../store/run-store.js';
import type { RunRecord } from './run-record.js';

/** Runs one run to its end; resolves with the final record (already saved). */
export type ExecuteRun = (run: RunRecord, job: JobConfig) => Promise<RunRecord>;

interface Entry {
  /** Arrival order: of two pushes for one job, the later arrival wins, whatever order their writes finish in. */
  seq: number;
  record: RunRecord;
  job: JobConfig;
}

interface JobState {
  running?: Entry | undefined;
  pending?: Entry | undefined;
}

export interface RunQueueOptions {
  store: RunStore;
  execute: ExecuteRun;
  maxParallel: number;
  logDir: string;
  logger: Logger;
  now?: () => Date;
}

/**
 * The per-job queue. One job never runs twice at once; pushes that arrive while it runs
 * collapse into one pending run for the newest push, and the ones it replaces are
 * recorded as superseded. Different jobs run in parallel up to `maxParallel`.
 */
export class RunQueue {
  readonly #options: RunQueueOptions;
  readonly #now: () => Date;
  readonly #jobs = new Map<string, JobState>();
  /** Jobs with a pending run and nothing running, in the order they became ready. */
  readonly #ready: string[] = [];
  #active = 0;
  #seq = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(options: RunQueueOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Records a run for `job` durably and schedules it. Rejects when the run cannot be
   * recorded (the caller must not acknowledge the delivery then).
   */
  async enqueue(job: JobConfig, push: PushEvent, event: Buffer): Promise<RunRecord> {
    const seq = ++this.#seq;
    const { store, logDir } = this.#options;
    const id = store.newRunId();
    const record: RunRecord = {
      id,
      job: job.name,
      status: 'queued',
      trigger: { type: 'webhook', provider: push.provider, delivery: push.deliveryId, pusher: push.pusher },
      repo: push.repo,
      ref: push.ref,
      ...(push.branch !== undefined ? { branch: push.branch } : {}),
      sha: push.sha,
      before: push.before,
      queuedAt: this.#now().toISOString(),
      logPath: join(logDir, job.name, `${id}.log`),
      eventFile: store.eventFile(job.name, id),
    };
    await store.create(record, event);

    const state = this.#state(job.name);
    const pending = state.pending;
    if (pending && pending.seq > seq) {
      this.#supersede(record, pending.record);
      return record;
    }
    if (pending) this.#supersede(pending.record, record);
    state.pending = { seq, record, job };
    if (!state.running && !this.#ready.includes(job.name)) this.#ready.push(job.name);
    this.#pump();
    return record;
  }

  /** The run in progress and the run waiting, per job. */
  snapshot(jobName: string): { running?: RunRecord; pending?: RunRecord } {
    const state = this.#jobs.get(jobName);
    return { ...(state?.running ? { running: state.running.record } : {}), ...(state?.pending ? { pending: state.pending.record } : {}) };
  }

  /** Resolves once nothing is running or waiting. */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#active === 0 && this.#ready.length === 0;
  }

  #state(jobName: string): JobState {
    let state = this.#jobs.get(jobName);
    if (!state) {
      state = {};
      this.#jobs.set(jobName, state);
    }
    return state;
  }

  #supersede(older: RunRecord, newer: RunRecord): void {
    older.status = 'superseded';
    older.supersededBy = newer.id;
    older.reason = `superseded by run ${newer.id} for the newer commit ${newer.sha.slice(0, 12)} before it started`;
    older.finishedAt = this.#now().toISOString();
    this.#options.logger.info({ job: older.job, run: older.id, supersededBy: newer.id, delivery: older.trigger.delivery }, 'run superseded');
    this.#options.store.save(older).catch((error: unknown) => {
      this.#options.logger.error({ job: older.job, run: older.id, err: error }, 'could not save superseded run record');
    });
  }

  #pump(): void {
    while (this.#active < this.#options.maxParallel && this.#ready.length > 0) {
      const name = this.#ready.shift() as string;
      const state = this.#state(name);
      const entry = state.pending;
      if (!entry || state.running) continue;
      state.pending = undefined;
      state.running = entry;
      this.#active += 1;
      this.#options
        .execute(entry.record, entry.job)
        .catch((error: unknown) => {
          this.#options.logger.error({ job: name, run: entry.record.id, err: error }, 'run ended with an unexpected error');
        })
        .finally(() => {
          this.#active -= 1;
          state.running = undefined;
          if (state.pending) this.#ready.push(name);
          this.#pump();
          if (this.#isIdle()) this.#idleWaiters.splice(0).forEach((resolve) => resolve());
        });
    }
  }
}
