import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { monotonicFactory } from 'ulid';
import { JOB_NAME_PATTERN } from '../config/schema.js';
import { DeployhookError } from '../errors.js';
import type { RunRecord } from '../jobs/run-record.js';
import { writeFileAtomic } from './atomic-write.js';

const RUN_ID_PATTERN = /^[0-9a-z]{26}$/;

/**
 * Run records and the verified payloads that triggered them, one JSON file each under
 * `<state_dir>/runs/<job>/`. Every write is atomic and fsynced before it resolves.
 */
export class RunStore {
  readonly #root: string;
  readonly #nextUlid = monotonicFactory();

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
    await writeFileAtomic(this.#recordFile(record.job, record.id), `${JSON.stringify(record, null, 2)}\n`);
  }
}
