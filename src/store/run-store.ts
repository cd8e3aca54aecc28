import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomFillSync } from 'node:crypto';
import { decodeTime, monotonicFactory, TIME_MAX } from 'ulid';
import { JOB_NAME_PATTERN } from '../config/schema.js';
import { DeployhookError } from '../errors.js';
import { FINAL_STATUSES, type RunRecord } from '../jobs/run-record.js';
import { spillFiles } from '../log/spill-files.js';
import { removeFile } from './remove-file.js';
import { type FileChange, JournaledFolder, type JournaledFolderOptions } from './journaled-folder.js';
import { parseRunRecord } from './run-record-schema.js';

const RUN_ID_PATTERN = /^[0-9a-z]{26}$/;
const RECORD_FILE = /^([0-9a-z]{26})\.json$/;
const TEMP_FILE = /^\..*\.tmp$/;

/**
 * Random fractions for run ids from a pool of cryptographic random bytes, refilled 4 KiB at a
 * time: ulid asks once per character, and one system call each was a noticeable part of
 * acknowledging a push.
 */
function pooledRandom(): () => number {
  const pool = Buffer.alloc(4096);
  let next = pool.length;
  return () => {
    if (next === pool.length) {
      randomFillSync(pool);
      next = 0;
    }
    return pool[next++]! / 256;
  };
}

/** When a run id was made; undefined for one that is not a ULID (a record edited by hand). */
function idTime(id: string): number | undefined {
  try {
    return decodeTime(id.toUpperCase());
  } catch {
    return undefined;
  }
}

/** How soon a record whose save failed is saved again when nothing else is saved meanwhile. */
const UNSAVED_RETRY_MS = 5_000;

export interface LoadedRuns {
  records: RunRecord[];
  /** Files that could not be read as a run record: reported, moved aside as `.corrupt`, and skipped. */
  problems: string[];
}

export interface RunFilter {
  job?: string;
  status?: string;
  /** Only runs older than this run id (ids sort by time): the cursor for the next page. */
  before?: string;
  limit: number;
}

/** The index of the first id in `sorted` that is `id` or newer (its length when there is none). */
function firstAtOrAfter(sorted: readonly string[], id: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] as string) < id) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Run records and the verified payloads that triggered them, one JSON file each under
 * `<state_dir>/runs/<job>/`. Every write is atomic and durable before it resolves: it goes
 * through the journal in `<state_dir>/journal/runs/` (see JournaledFolder). The records are
 * also kept in memory (the same objects the queue and the runs update), so the API reads
 * them without touching the disk.
 */
export class RunStore {
  readonly #root: string;
  readonly #logDir: string;
  readonly #nextUlid = monotonicFactory(pooledRandom());
  readonly #records = new Map<string, RunRecord>();
  /**
   * The same records by job: what the status page, `latest` and retention look at is one
   * job's runs (`keep_runs` of them), not every job's (5,000 jobs keep 500,000 by default).
   */
  readonly #byJob = new Map<string, Map<string, RunRecord>>();
  /**
   * Every id of `#records`, oldest first, for the pages of all runs (the status page asks for
   * the newest 20 every 3 s): sorted once after loading, then new ids, which are always newer,
   * are appended. Ids retention removed stay until they are half of it, and are skipped.
   */
  #ordered: string[] = [];
  #orderedSorted = true;
  #orderedRemoved = 0;
  /** The last save of each record still in progress. */
  readonly #saving = new Map<string, Promise<void>>();
  readonly #files: JournaledFolder;
  /** Jobs whose folder is known to exist. */
  readonly #folders = new Set<string>();
  /**
   * Each job's two folders (its records, its logs), by job name: checked and joined once. Paths are made
   * several times per push (record, payload, log, retention), and path.join each time was ~4 %
   * of the main thread under a flood of pushes (docs/benchmarks-record.md, section 1).
   */
  readonly #jobPaths = new Map<string, { records: string; logs: string }>();

  /**
   * `options.write`: the journal's batch write, for a test that makes it fail (see
   * JournalOptions); `onKept`: told when run files could not be made durable (see lastFailure).
   */
  constructor(stateDir: string, logDir: string, options: Pick<JournaledFolderOptions, 'write' | 'onKept'> = {}) {
    this.#root = join(stateDir, 'runs');
    this.#logDir = logDir;
    this.#files = new JournaledFolder({
      ...(options.write !== undefined ? { write: options.write } : {}),
      root: this.#root,
      journalDir: join(stateDir, 'journal', 'runs'),
      onPlaced: (failure) => {
        this.#placeFailure = failure;
      },
      onKept: (failure) => {
        this.#keptFailure = failure;
        options.onKept?.(failure);
      },
    });
  }

  /** Where a run's log lives: derived, never taken from a record. */
  logPath(job: string, id: string): string {
    return `${this.#paths(job, id).logs}/${id}.log`;
  }

  /** Sortable, unique across restarts (time first, then randomness). */
  newRunId(): string {
    return this.#nextUlid().toLowerCase();
  }

  /**
   * The job's folders, once its name and the run id are checked: a name or id from anywhere
   * else can never make a path outside them (a job name has no `/` and does not start with `.`).
   */
  #paths(job: string, id: string): { records: string; logs: string } {
    if (!RUN_ID_PATTERN.test(id)) throw new DeployhookError('INVALID_RUN_ID', `Expected a run id of 26 lowercase letters and digits, got ${JSON.stringify(id)}`);
    let paths = this.#jobPaths.get(job);
    if (paths === undefined) {
      if (!JOB_NAME_PATTERN.test(job)) throw new DeployhookError('INVALID_JOB_NAME', `Expected a job name matching ${String(JOB_NAME_PATTERN)}, got ${JSON.stringify(job)}`);
      paths = { records: join(this.#root, job), logs: join(this.#logDir, job) };
      this.#jobPaths.set(job, paths);
    }
    return paths;
  }

  eventFile(job: string, id: string): string {
    return `${this.#paths(job, id).records}/${id}.event.json`;
  }

  #recordFile(job: string, id: string): string {
    return `${this.#paths(job, id).records}/${id}.json`;
  }

  /**
   * Records a new run and its payload durably. Resolves only once both are on disk; when
   * that fails, nothing of the run is left behind, on disk or in memory.
   */
  async create(record: RunRecord, event: Buffer): Promise<void> {
    if (!this.#folders.has(record.job)) {
      await mkdir(this.#paths(record.job, record.id).records, { recursive: true });
      this.#folders.add(record.job);
    }
    const recordFile = this.#recordFile(record.job, record.id);
    try {
      await this.#chain(record.id, () => this.#write(record, [{ file: record.eventFile, data: event, fresh: true }], true));
    } catch (error) {
      const remove: FileChange[] = [{ file: record.eventFile, remove: true }, { file: recordFile, remove: true }];
      await this.#files.write(remove).catch(() => Promise.all([rm(record.eventFile, { force: true }), rm(recordFile, { force: true })])).catch(() => undefined);
      throw error;
    }
  }

  #writeFailure: Error | undefined;
  /** Kept records whose last save failed: saved again after the next save that succeeds. */
  readonly #unsaved = new Map<string, RunRecord>();
  #retrying = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Closed: nothing is saved again by a timer (the journal is being emptied for the next start). */
  #closed = false;
  #placeFailure: Error | undefined;
  /** Run files that could not be made durable: their journal is kept until a restart replays it. */
  #keptFailure: Error | undefined;

  /**
   * The last save that failed (disk full, read-only), until every record whose save failed has
   * been saved since (they are saved again after any save that succeeds, and every
   * UNSAVED_RETRY_MS), and a write has gone through (asked with one that leaves nothing), or else the
   * last batch of files that could not be put in place from the journal, until one goes in
   * whole, or else run files that could not be made durable, until a restart: readiness
   * reports it.
   */
  get lastFailure(): { during: 'save' | 'place' | 'sync'; error: Error } | undefined {
    if (this.#writeFailure) return { during: 'save', error: this.#writeFailure };
    if (this.#keptFailure && !this.#placeFailure) return { during: 'sync', error: this.#keptFailure };
    return this.#placeFailure ? { during: 'place', error: this.#placeFailure } : undefined;
  }

  /**
   * Writes the record as it is when its turn comes. Saves of one record run one after the
   * other (the queue, the run and fan-out all save the same record), so an older state
   * never lands after a newer one.
   */
  save(record: RunRecord): Promise<void> {
    return this.#chain(record.id, () => this.#write(record));
  }

  /** Like save, but only while the record is kept: a pruned run is not written back. */
  saveIfKept(record: RunRecord): Promise<void> {
    return this.#chain(record.id, async () => {
      if (this.#records.get(record.id) === record) await this.#write(record);
    });
  }

  #chain(id: string, write: () => Promise<void>): Promise<void> {
    const next = (this.#saving.get(id) ?? Promise.resolve()).catch(() => undefined).then(write);
    this.#saving.set(id, next);
    const forget = () => {
      if (this.#saving.get(id) === next) this.#saving.delete(id);
    };
    next.then(forget, forget);
    return next;
  }

  async #write(record: RunRecord, alongside: readonly FileChange[] = [], fresh = false): Promise<void> {
    // A save whose turn comes after retention removed the run must not write it back.
    if (!fresh && !this.#records.has(record.id)) return;
    try {
      await this.#files.write([...alongside, { file: this.#recordFile(record.job, record.id), data: `${JSON.stringify(record, null, 2)}\n`, fresh }]);
    } catch (error) {
      this.#writeFailure = error as Error;
      // A new record that could not be written is not acknowledged, and not kept; nor is one
      // that retention removed while this save waited.
      if (!fresh && this.#records.get(record.id) === record) this.#unsaved.set(record.id, record);
      this.#armRetry();
      throw error;
    }
    this.#unsaved.delete(record.id);
    // A save that was in flight while prune dropped the record must not bring it back.
    if (fresh || this.#records.has(record.id)) this.#keep(record);
    if (this.#unsaved.size === 0) this.#writeFailure = undefined;
    else this.#saveUnsaved();
  }

  /**
   * Saves again the records whose save failed, once the disk takes writes again (after a save
   * that succeeds, or UNSAVED_RETRY_MS after the failure): otherwise a run's final status lost
   * to a full disk would stay `running` on disk, and be repeated after a restart. One pass at
   * a time.
   */
  #saveUnsaved(): void {
    if (this.#retrying || this.#closed) return;
    this.#retrying = true;
    for (const [id, record] of this.#unsaved) if (this.#records.get(id) !== record) this.#unsaved.delete(id);
    const records = [...this.#unsaved.values()];
    // Nothing to save again (the failure was a new run's, answered 503): whether the disk takes
    // writes again is asked with a write of nothing that lasts, so that an idle daemon does not
    // stay unready for good (a load balancer that sends it nothing while unready never would).
    const work = records.length > 0 ? records.map((record) => this.saveIfKept(record).catch(() => undefined)) : [this.#probe()];
    void Promise.all(work).finally(() => {
      this.#retrying = false;
      // What failed again is tried again later, also when nothing else is saved meanwhile.
      if (this.#unsaved.size > 0 || this.#writeFailure !== undefined) this.#armRetry();
    });
  }

  /** A durable write through the journal that leaves no file: a file made and removed in one batch. */
  async #probe(): Promise<void> {
    const file = join(this.#root, '.probe');
    try {
      await this.#files.write([{ file, data: '', fresh: true }, { file, remove: true }]);
    } catch {
      return;
    }
    if (this.#unsaved.size === 0) this.#writeFailure = undefined;
  }

  /** An idle daemon saves nothing else that would bring the retry about: a timer does. */
  #armRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#saveUnsaved();
    }, UNSAVED_RETRY_MS).unref();
  }

  get(id: string): RunRecord | undefined {
    return this.#records.get(id);
  }

  #keep(record: RunRecord): void {
    if (!this.#records.has(record.id)) {
      const last = this.#ordered.at(-1);
      if (last !== undefined && record.id < last) this.#orderedSorted = false;
      this.#ordered.push(record.id);
    }
    this.#records.set(record.id, record);
    let ofJob = this.#byJob.get(record.job);
    if (ofJob === undefined) this.#byJob.set(record.job, (ofJob = new Map()));
    ofJob.set(record.id, record);
  }

  /** A job's runs. */
  #runsOf(job: string): ReadonlyMap<string, RunRecord> {
    return this.#byJob.get(job) ?? new Map<string, RunRecord>();
  }

  /** Runs newest first, filtered, at most `limit` of them. */
  list(filter: RunFilter): RunRecord[] {
    const out: RunRecord[] = [];
    // The records come from the job's own runs when it is named.
    const take = (record: RunRecord | undefined): boolean => {
      if (record !== undefined && (filter.status === undefined || record.status === filter.status)) out.push(record);
      return out.length >= filter.limit;
    };
    if (filter.job !== undefined) {
      const runs = this.#runsOf(filter.job);
      for (const id of [...runs.keys()].sort().reverse()) if ((filter.before === undefined || id < filter.before) && take(runs.get(id))) break;
      return out;
    }
    const ordered = this.#orderedIds();
    for (let i = filter.before === undefined ? ordered.length - 1 : firstAtOrAfter(ordered, filter.before) - 1; i >= 0; i -= 1) {
      if (take(this.#records.get(ordered[i] as string))) break;
    }
    return out;
  }

  #orderedIds(): readonly string[] {
    if (!this.#orderedSorted) {
      this.#ordered.sort();
      this.#orderedSorted = true;
    }
    return this.#ordered;
  }

  /** The newest run of a job that matches `status` (any status when undefined). */
  latest(job: string, status?: RunRecord['status']): RunRecord | undefined {
    let newest: RunRecord | undefined;
    for (const record of this.#runsOf(job).values()) {
      if ((status === undefined || record.status === status) && (newest === undefined || record.id > newest.id)) newest = record;
    }
    return newest;
  }

  async readEvent(record: RunRecord): Promise<Buffer> {
    const file = this.eventFile(record.job, record.id);
    const event = await this.#files.read(file);
    if (event === undefined) throw new DeployhookError('EVENT_MISSING', `Expected the payload of run ${record.id} at ${file}, but it is gone`);
    return event;
  }

  /** Puts the run's payload file in place now, ahead of the batches (see JournaledFolder), for the command to read. */
  placeEvent(record: RunRecord): Promise<void> {
    return this.#files.writeThrough(this.eventFile(record.job, record.id));
  }

  /** Puts every acknowledged change in place now. */
  place(): Promise<void> {
    return this.#files.place();
  }

  /** Puts everything in place durably and empties the journal, so that the next start replays nothing. */
  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    return this.#files.close();
  }

  /**
   * Every record on disk, oldest first, after the journal left by the last process has been
   * applied. Temporary files of interrupted writes are removed.
   */
  async loadAll(): Promise<LoadedRuns> {
    await this.#files.replay();
    const loaded: LoadedRuns = { records: [], problems: [] };
    let newest = '';
    const jobs = await readdir(this.#root).catch(() => [] as string[]);
    for (const job of jobs.filter((name) => JOB_NAME_PATTERN.test(name))) {
      const folder = join(this.#root, job);
      for (const name of (await readdir(folder)).sort()) {
        if (TEMP_FILE.test(name)) {
          await rm(join(folder, name), { force: true });
          continue;
        }
        const id = RECORD_FILE.exec(name)?.[1];
        if (id === undefined) continue;
        const file = join(folder, name);
        const value = await readFile(file, 'utf8').then((text) => JSON.parse(text) as unknown).catch(() => undefined);
        const parsed = parseRunRecord(value, { logPath: this.logPath(job, id), eventFile: this.eventFile(job, id) });
        // An id that is no ULID (a record edited by hand) would order nothing, or everything after it.
        if (parsed && parsed.id === id && parsed.job === job && idTime(id) !== undefined) {
          loaded.records.push(parsed);
          this.#keep(parsed);
          newest = parsed.id > newest ? parsed.id : newest;
        } else {
          loaded.problems.push(`${file}: not a valid run record; moved aside to ${name}.corrupt`);
          await rename(file, `${file}.corrupt`);
        }
      }
    }
    // Run ids order runs, recovery included: a clock behind the last process's (set back, or
    // not yet synchronised at boot) must not give new runs ids that sort before the old ones.
    const newestTime = newest === '' ? undefined : idTime(newest);
    if (newestTime !== undefined && newestTime >= Date.now() && newestTime < TIME_MAX) this.#nextUlid(newestTime + 1);
    return loaded;
  }

  /**
   * Keeps the newest `keep` finished runs of a job, and its newest succeeded run (what is
   * deployed) even when it is older; other records, payloads and logs are deleted. Queued
   * and running runs always stay.
   */
  async prune(job: string, keep: number): Promise<number> {
    const deployed = this.latest(job, 'succeeded')?.id;
    const finished = [...this.#runsOf(job).values()].filter((record) => FINAL_STATUSES.has(record.status));
    const ids = finished.map((record) => record.id).sort().reverse().slice(keep).filter((id) => id !== deployed);
    if (ids.length === 0) return 0;
    // A run that never started (superseded, cancelled while queued) has no log.
    const logged = ids.filter((id) => this.#records.get(id)?.startedAt !== undefined);
    let unsavedDropped = false;
    for (const id of ids) {
      this.#records.delete(id);
      this.#byJob.get(job)?.delete(id);
      this.#orderedRemoved += 1;
      unsavedDropped = this.#unsaved.delete(id) || unsavedDropped;
    }
    if (this.#orderedRemoved > this.#ordered.length / 2) {
      this.#ordered = this.#ordered.filter((id) => this.#records.has(id));
      this.#orderedRemoved = 0;
    }
    if (unsavedDropped && this.#unsaved.size === 0) this.#writeFailure = undefined;
    for (const id of ids) await this.#saving.get(id)?.catch(() => undefined);
    await this.#files.write(ids.flatMap((id): FileChange[] => [
      { file: this.eventFile(job, id), remove: true },
      { file: this.#recordFile(job, id), remove: true },
    ]));
    for (const id of logged) {
      const log = this.logPath(job, id);
      // With the spill files a daemon that died during the run left beside the log.
      for (const file of [log, ...spillFiles(log)]) await removeFile(file);
    }
    return ids.length;
  }
}
