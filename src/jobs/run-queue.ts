import type { Logger } from 'pino';
import { inside } from '../config/checkout-clashes.js';
import type { JobConfig } from '../config/types.js';
import type { LineLimiter } from '../log/line-limit.js';
import type { RunStore } from '../store/run-store.js';
import type { RunRecord } from './run-record.js';

/** How a running run is stopped: `signal` aborts it; `cancelled()` tells an operator's cancel from a shutdown. */
export interface RunStop {
  signal: AbortSignal;
  cancelled(): boolean;
  /**
   * Tells the queue the run's outcome is decided (its git or its command has ended): from
   * then on it can no longer be cancelled, and a shutdown does not count it as interrupted.
   */
  settle(): void;
  /**
   * Aborted once the daemon stops starting runs (it is shutting down). What a run does after
   * its record is final (git's housekeeping) stops then, instead of holding up the shutdown.
   */
  closing: AbortSignal;
}

/** Runs one run to its end; resolves with the final record (already saved). */
export type ExecuteRun = (run: RunRecord, job: JobConfig, stop: RunStop) => Promise<RunRecord>;

/** What a run is asked to deploy (validated data), with the verified payload for DEPLOYHOOK_EVENT_FILE. */
export type RunRequest = Pick<RunRecord, 'trigger' | 'repo' | 'ref' | 'branch' | 'tag' | 'sha' | 'before' | 'exact' | 'source'> & { event: Buffer };

interface Entry {
  /** Arrival order: of two pushes for one job, the later arrival wins, whatever order their writes finish in. */
  seq: number;
  record: RunRecord;
}

interface Running {
  entry: Entry;
  stop: AbortController;
  cancelled: boolean;
  /** The outcome is decided; what is left is bookkeeping and git's housekeeping. */
  settled: boolean;
  /** Per run, so that no signal that lives as long as the daemon collects a listener per run. */
  closing: AbortController;
}

/** An arrival whose record is being written. */
interface Arrival {
  seq: number;
  record: RunRecord;
  queued: Promise<RunRecord>;
}

interface JobState {
  running?: Running | undefined;
  pending?: Entry | undefined;
  /** The latest arrival accepted for the job, running or waiting. */
  newest?: Entry | undefined;
  /**
   * The job's arrivals whose records are being written, each with what its `enqueue`
   * promised. A push joins the latest of them, if it is the job's latest arrival (see
   * joinable); an earlier one is superseded once written.
   */
  writing?: Map<RunRecord, Arrival>;
}

export interface RunQueueOptions {
  store: RunStore;
  execute: ExecuteRun;
  /** The current jobs by name: a run starts with the job's config as it is when it starts. */
  job: (name: string) => JobConfig | undefined;
  maxParallel: number;
  logger: Logger;
  /** Told about runs that end without starting (superseded, cancelled), for metrics. */
  onFinished?: (run: RunRecord) => void;
  /**
   * Lines for superseded runs pass through this when given (a flood of commits supersedes a
   * run per push): past its rate, they are counted instead. Cancelled runs are always logged.
   */
  supersededLines?: LineLimiter;
  /** Start with runs held until `start()`, so recovery can line everything up first. */
  paused?: boolean;
  now?: () => Date;
}

/**
 * Whether a webhook push asks for what a waiting webhook run will deploy anyway: its commit of
 * the same ref, from the same host, after the same previous commit (`before`, which the command
 * sees and `paths` may compare with).
 */
function sameWebhookCommit(waiting: RunRecord, request: RunRequest): boolean {
  const plain = (run: Pick<RunRecord, 'trigger' | 'exact' | 'source'>) => run.trigger.type === 'webhook' && run.exact !== true && run.source === undefined;
  return (
    plain(waiting) &&
    plain(request) &&
    request.sha !== '' &&
    request.sha === waiting.sha &&
    request.ref === waiting.ref &&
    request.before === waiting.before &&
    request.repo === waiting.repo &&
    request.trigger.provider === waiting.trigger.provider
  );
}

/**
 * The per-job queue. One job never runs twice at once; pushes that arrive while it runs
 * collapse into one pending run for the newest push, and the ones it replaces are recorded
 * as superseded (a push of the waiting run's own commit joins it: see joinable). Different
 * jobs run in parallel up to `maxParallel`.
 */
export class RunQueue {
  readonly #options: RunQueueOptions;
  readonly #now: () => Date;
  readonly #jobs = new Map<string, JobState>();
  /** Jobs with a pending run and nothing running, in the order they became ready. */
  readonly #ready: string[] = [];
  /** Checkouts in use by a running run, and the job whose run it is. */
  readonly #checkouts = new Map<string, string>();
  #maxParallel: number;
  #active = 0;
  #seq = 0;
  #starting = true;
  #waiters: Array<() => void> = [];

  constructor(options: RunQueueOptions) {
    this.#options = options;
    this.#maxParallel = options.maxParallel;
    this.#starting = options.paused !== true;
    this.#now = options.now ?? (() => new Date());
  }

  /** Lets runs start (after a paused construction). */
  start(): void {
    this.#starting = true;
    this.#pump();
  }

  /**
   * Records a run for `job` durably and schedules it. Rejects when the run cannot be
   * recorded (the caller must not acknowledge the delivery then).
   */
  enqueue(job: JobConfig, request: RunRequest): Promise<RunRecord> {
    return this.#enqueue(++this.#seq, job, request);
  }

  /**
   * What a push is given: the run it joins (see joinable), or else a run of its own, recorded
   * durably (rejects when it cannot be; the caller must not acknowledge the delivery then).
   * When the record it would join cannot be written, the push is queued in that arrival's
   * place in line, so that it still gives way to the arrivals after it.
   */
  async enqueueOrJoin(job: JobConfig, request: RunRequest): Promise<{ run: RunRecord; joined: boolean }> {
    const target = this.#joinTarget(job, request);
    if (target === undefined) return { run: await this.enqueue(job, request), joined: false };
    if ('record' in target) return { run: target.record, joined: true };
    try {
      return { run: await target.arrival.queued, joined: true };
    } catch {
      return { run: await this.#enqueue(target.arrival.seq, job, request), joined: false };
    }
  }

  async #enqueue(seq: number, job: JobConfig, request: RunRequest): Promise<RunRecord> {
    const { store } = this.#options;
    const id = store.newRunId();
    const record: RunRecord = {
      id,
      job: job.name,
      status: 'queued',
      trigger: request.trigger,
      repo: request.repo,
      ref: request.ref,
      ...(request.branch !== undefined ? { branch: request.branch } : {}),
      ...(request.tag !== undefined ? { tag: request.tag } : {}),
      sha: request.sha,
      ...(request.exact ? { exact: true } : {}),
      before: request.before,
      ...(request.source !== undefined ? { source: request.source } : {}),
      queuedAt: this.#now().toISOString(),
      logPath: store.logPath(job.name, id),
      eventFile: store.eventFile(job.name, id),
    };
    const state = this.#state(job.name);
    const writing = (state.writing ??= new Map());
    const queued = (async () => {
      try {
        await store.create(record, request.event);
      } finally {
        writing.delete(record);
      }
      this.#add({ seq, record });
      return record;
    })();
    writing.set(record, { seq, record, queued });
    return queued;
  }

  /**
   * The run a webhook push would join: the job's waiting run, when the push asks for the very
   * commit it is for, instead of queuing a run to replace it, since there is nothing new to
   * deploy, and nothing is written (the waiting run is on disk already). Its fetch is still to
   * come, after the push, as a run's own would be; the running run's may not be, so it is never
   * joined. When the job's latest arrival is a record still being written, that run is the one
   * joined, if it is for the same commit, once it is written and in line (a promise;
   * `undefined` if that write failed): it cannot have started before the push came, and a later
   * arrival, perhaps of another commit, still replaces it. Records of earlier arrivals still
   * being written change nothing: they are superseded once written. Never with runs that deploy
   * one exact commit (an operator's) or generic events (the payload is the command's input).
   * The caller counts the join on the run once the delivery is recorded.
   */
  joinable(job: JobConfig, request: RunRequest): RunRecord | Promise<RunRecord | undefined> | undefined {
    const target = this.#joinTarget(job, request);
    if (target === undefined || 'record' in target) return target?.record;
    return target.arrival.queued.then(
      (record) => record,
      () => undefined,
    );
  }

  #joinTarget(job: JobConfig, request: RunRequest): { record: RunRecord } | { arrival: Arrival } | undefined {
    const state = this.#jobs.get(job.name);
    if (state === undefined) return undefined;
    let latest: Arrival | undefined;
    for (const arrival of state.writing?.values() ?? []) if (latest === undefined || arrival.seq > latest.seq) latest = arrival;
    if (latest !== undefined && (state.newest === undefined || latest.seq > state.newest.seq)) {
      return sameWebhookCommit(latest.record, request) ? { arrival: latest } : undefined;
    }
    const waiting = state.pending?.record;
    return waiting !== undefined && sameWebhookCommit(waiting, request) ? { record: waiting } : undefined;
  }

  /** Puts a run that is already recorded as queued (found on disk at start) back in line. */
  restore(record: RunRecord): void {
    this.#add({ seq: ++this.#seq, record });
  }

  #add(entry: Entry): void {
    const state = this.#state(entry.record.job);
    // A later arrival whose write finished first is already waiting or running: this one is older.
    if (state.newest && state.newest.seq > entry.seq) {
      this.#supersede(entry.record, state.newest.record);
      return;
    }
    state.newest = entry;
    const pending = state.pending;
    if (pending) this.#supersede(pending.record, entry.record);
    state.pending = entry;
    if (!state.running && !this.#ready.includes(entry.record.job)) this.#ready.push(entry.record.job);
    this.#pump();
  }

  /** The run in progress (not one that is only tidying up after itself) and the run waiting, per job. */
  snapshot(jobName: string): { running?: RunRecord; pending?: RunRecord } {
    const state = this.#jobs.get(jobName);
    return { ...(state?.running && !state.running.settled ? { running: state.running.entry.record } : {}), ...(state?.pending ? { pending: state.pending.record } : {}) };
  }

  set maxParallel(value: number) {
    this.#maxParallel = value;
    this.#pump();
  }

  /** Cancels the waiting run of a job (a reload removed the job); a running one finishes. */
  cancelPending(jobName: string, reason: string): void {
    const state = this.#jobs.get(jobName);
    const pending = state?.pending;
    if (!state || !pending) return;
    state.pending = undefined;
    const ready = this.#ready.indexOf(jobName);
    if (ready !== -1) this.#ready.splice(ready, 1);
    this.#finishUnstarted(pending.record, 'cancelled', reason);
    this.#notify();
  }

  /**
   * Cancels a run: a waiting one is recorded as cancelled at once, a running one is stopped
   * (its process group killed) and recorded as cancelled when it ends. False when the run
   * is neither waiting nor running, or its outcome is already decided (its command ended).
   */
  cancel(runId: string, reason: string): boolean {
    for (const [name, state] of this.#jobs) {
      if (state.pending?.record.id === runId) {
        this.cancelPending(name, reason);
        return true;
      }
      // A run whose outcome is decided (it is only tidying up after itself) can no longer be cancelled.
      if (state.running?.entry.record.id === runId && !state.running.settled) {
        // Wins over a shutdown that is already stopping the run: it is recorded as cancelled, not repeated.
        state.running.cancelled = true;
        state.running.stop.abort('cancelled');
        return true;
      }
    }
    return false;
  }

  /** Waiting runs, all jobs together. */
  get depth(): number {
    let depth = 0;
    for (const state of this.#jobs.values()) if (state.pending) depth += 1;
    return depth;
  }

  /**
   * No new run starts from now on; waiting runs stay queued on disk for the next start, and
   * work after a run's final record (git's housekeeping) stops.
   */
  stopStarting(): void {
    this.#starting = false;
    for (const state of this.#jobs.values()) state.running?.closing.abort('shutdown');
    this.#notify();
  }

  /**
   * Stops every running run (process groups killed); they are recorded as interrupted.
   * Returns the ids of those whose record was not final yet: they run again after a restart.
   */
  interruptRunning(): string[] {
    const interrupted: string[] = [];
    for (const state of this.#jobs.values()) {
      if (!state.running) continue;
      if (!state.running.settled) interrupted.push(state.running.entry.record.id);
      state.running.stop.abort('shutdown');
    }
    return interrupted;
  }

  /** Resolves once nothing runs and, unless starting has stopped, nothing waits. */
  whenIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #isIdle(): boolean {
    return this.#active === 0 && (!this.#starting || this.#ready.length === 0);
  }

  #notify(): void {
    if (this.#isIdle()) this.#waiters.splice(0).forEach((resolve) => resolve());
  }

  #state(jobName: string): JobState {
    let state = this.#jobs.get(jobName);
    if (!state) {
      state = {};
      this.#jobs.set(jobName, state);
    }
    return state;
  }

  /**
   * The job whose run uses `checkout`, or a checkout inside it or around it (a reload can give
   * a job one nested in another's, which that run's `git clean` would empty under it).
   */
  #checkoutHolder(checkout: string): string | undefined {
    for (const [held, name] of this.#checkouts) {
      if (inside(checkout, held) || inside(held, checkout)) return name;
    }
    return undefined;
  }

  #supersede(older: RunRecord, newer: RunRecord): void {
    older.supersededBy = newer.id;
    const what = newer.sha !== '' ? `the newer commit ${newer.sha.slice(0, 12)}` : `a newer event${newer.source !== undefined ? ` from ${newer.source}` : ''}`;
    this.#finishUnstarted(older, 'superseded', `superseded by run ${newer.id} for ${what} before it started`);
  }

  #finishUnstarted(record: RunRecord, status: 'superseded' | 'cancelled', reason: string): void {
    record.status = status;
    record.reason = reason;
    record.finishedAt = this.#now().toISOString();
    const { logger, store, supersededLines } = this.#options;
    if (status === 'cancelled' || (supersededLines?.allow(status) ?? true)) logger.info({ job: record.job, run: record.id, status, reason, delivery: record.trigger.delivery }, `run ${status}`);
    this.#options.onFinished?.(record);
    store.save(record).catch((error: unknown) => {
      logger.error({ job: record.job, run: record.id, err: error }, 'could not save run record');
    });
  }

  #pump(): void {
    // Jobs whose checkout another job's run is using (a reload renamed a job, or gave its
    // checkout to another): they keep their place and start when that run has ended.
    const waiting: string[] = [];
    while (this.#starting && this.#active < this.#maxParallel && this.#ready.length > 0) {
      const name = this.#ready.shift() as string;
      const state = this.#state(name);
      const entry = state.pending;
      if (!entry || state.running) continue;
      const job = this.#options.job(name);
      if (!job) {
        state.pending = undefined;
        this.#finishUnstarted(entry.record, 'cancelled', `job ${name} is no longer in the config`);
        continue;
      }
      const checkout = job.remote !== undefined ? job.checkout : undefined;
      const holder = checkout !== undefined ? this.#checkoutHolder(checkout) : undefined;
      if (holder !== undefined && holder !== name) {
        waiting.push(name);
        continue;
      }
      state.pending = undefined;
      if (checkout !== undefined) this.#checkouts.set(checkout, name);
      const running: Running = { entry, stop: new AbortController(), cancelled: false, settled: false, closing: new AbortController() };
      state.running = running;
      this.#active += 1;
      this.#options
        .execute(entry.record, job, {
          signal: running.stop.signal,
          cancelled: () => running.cancelled,
          settle: () => {
            running.settled = true;
          },
          closing: running.closing.signal,
        })
        .catch(async (error: unknown) => {
          // A backstop: the run must not stay `running` while the daemon is up.
          this.#options.logger.error({ job: name, run: entry.record.id, err: error }, 'run ended with an unexpected error');
          Object.assign(entry.record, { status: 'failed', reason: `deployhook failed: ${error instanceof Error ? error.message : String(error)}`, finishedAt: this.#now().toISOString() });
          await this.#options.store.save(entry.record).catch(() => undefined);
        })
        .finally(() => {
          this.#active -= 1;
          state.running = undefined;
          if (checkout !== undefined && this.#checkouts.get(checkout) === name) this.#checkouts.delete(checkout);
          if (state.pending) this.#ready.push(name);
          this.#pump();
          this.#notify();
        });
    }
    this.#ready.unshift(...waiting);
  }
}
