import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { monotonicFactory } from 'ulid';
import { JOB_NAME_PATTERN } from '../config/schema.js';
import { DeployhookError } from '../errors.js';
import { FINAL_STATUSES, RUN_STATUSES, type RunRecord } from '../jobs/run-record.js';
import { writeFileAtomic } from './atomic-write.js';

const RUN_ID_PATTERN = /^[0-9a-z]{26}$/;
const RECORD_FILE = /^([0-9a-z]{26})\.json$/;
const TEMP_FILE = /^\..*\.tmp$/;

export interface LoadedRuns {
  records: RunRecord[];
  /** Files that could not be read as a run record: reported, moved aside as `.corrupt`, and skipped. */
  problems: string[];
}

function isRunRecord(value: unknown, id: string, job: string): value is RunRecord {
  if (value === null || typeof value !== 'object') return false;
  const record = value as Partial<RunRecord>;
  return record.id === id && record.job === job && RUN_STATUSES.includes(record.status as never) && typeof record.sha === 'string' && typeof record.logPath === 'string' && typeof record.eventFile === 'string' && typeof record.trigger === 'object';
}

export interface RunFilter {
  job?: string;
  status?: string;
  /** Only runs older than this run id (ids sort by time): the cursor for the next page. */
  before?: string;
  limit: number;
}

/**
 * Run records and the verified payloads that triggered them, one JSON file each under
 * `<state_dir>/runs/<job>/`. Every write is atomic and fsynced before it resolves. The
 * records are also kept in memory (the same objects the queue and the runs update), so
 * the API reads them without touching the disk.
 */
export class RunStore {
  readonly #root: string;
  readonly #nextUlid = monotonicFactory();
  readonly #records = new Map<string, RunRecord>();

  constructor(stateDir: string) {
    this.#root = join(stateDir, 'runs');
  }

  /** Sortable, unique across restarts (time first, then randomness). */
  newRunId(): string {
    return this.#nextUlid().toLowerCase();
  }

  #folder(job: string): string {
    if (!JOB_NAME_PATTERN.test(job)) throw new DeployhookError('INVALID_JOB_NAME', `Expected a job name matching ${String(JOB_NAME_PATTERN)}, got ${JSON.stringify(job)}`);
    return join(this.#root, job);
  }

  eventFile(job: string, id: string): string {
    if (!RUN_ID_PATTERN.test(id)) throw new DeployhookError('INVALID_RUN_ID', `Expected a run id of 26 lowercase letters and digits, got ${JSON.stringify(id)}`);
    return join(this.#folder(job), `${id}.event.json`);
  }

  #recordFile(job: string, id: string): string {
    return this.eventFile(job, id).replace(/\.event\.json$/, '.json');
  }

  /** Records a new run and its payload durably. Resolves only once both are on disk. */
  async create(record: RunRecord, event: Buffer): Promise<void> {
    await mkdir(this.#folder(record.job), { recursive: true });
    await writeFileAtomic(record.eventFile, event);
    await this.save(record);
  }

  async save(record: RunRecord): Promise<void> {
    this.#records.set(record.id, record);
    await writeFileAtomic(this.#recordFile(record.job, record.id), `${JSON.stringify(record, null, 2)}\n`);
  }

  get(id: string): RunRecord | undefined {
    return this.#records.get(id);
  }

  /** Runs newest first, filtered, at most `limit` of them. */
  list(filter: RunFilter): RunRecord[] {
    const out: RunRecord[] = [];
    const ids = [...this.#records.keys()].sort().reverse();
    for (const id of ids) {
      if (filter.before !== undefined && id >= filter.before) continue;
      const record = this.#records.get(id);
      if (!record || (filter.job !== undefined && record.job !== filter.job) || (filter.status !== undefined && record.status !== filter.status)) continue;
      out.push(record);
      if (out.length >= filter.limit) break;
    }
    return out;
  }

  /** The newest run of a job that matches `status` (any status when undefined). */
  latest(job: string, status?: RunRecord['status']): RunRecord | undefined {
    return this.list({ job, ...(status !== undefined ? { status } : {}), limit: 1 })[0];
  }

  async readEvent(record: RunRecord): Promise<Buffer> {
    return readFile(this.eventFile(record.job, record.id));
  }

  /** Every record on disk, oldest first. Temporary files of interrupted writes are removed. */
  async loadAll(): Promise<LoadedRuns> {
    const loaded: LoadedRuns = { records: [], problems: [] };
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
        const parsed = await readFile(file, 'utf8').then((text) => JSON.parse(text) as unknown).catch(() => undefined);
        if (isRunRecord(parsed, id, job)) {
          loaded.records.push(parsed);
          this.#records.set(parsed.id, parsed);
        } else {
          loaded.problems.push(`${file}: not a valid run record; moved aside to ${name}.corrupt`);
          await rename(file, `${file}.corrupt`);
        }
      }
    }
    return loaded;
  }

  /**
   * Keeps the newest `keep` finished runs of a job; older records, payloads and logs are
   * deleted. The log is looked for in `logDir` only, whatever a record says.
   */
  async prune(job: string, keep: number, logDir: string): Promise<number> {
    const folder = this.#folder(job);
    const ids = (await readdir(folder)).map((name) => RECORD_FILE.exec(name)?.[1]).filter((id): id is string => id !== undefined).sort().reverse();
    let finished = 0;
    let removed = 0;
    for (const id of ids) {
      const record = await readFile(join(folder, `${id}.json`), 'utf8').then((text) => JSON.parse(text) as RunRecord).catch(() => undefined);
      if (!record || !FINAL_STATUSES.has(record.status)) continue;
      finished += 1;
      if (finished <= keep) continue;
      await rm(join(logDir, job, `${id}.log`), { force: true });
      await rm(this.eventFile(job, id), { force: true });
      await rm(join(folder, `${id}.json`), { force: true });
      this.#records.delete(id);
      removed += 1;
    }
    return removed;
  }
}
