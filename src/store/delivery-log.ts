import { createHash } from 'node:crypto';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployhookError } from '../errors.js';
import { isNotFound, removeFile } from './remove-file.js';
import { JournaledFolder } from './journaled-folder.js';

const DEFAULT_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;
const RECORD_NAME = /^([0-9a-f]{64})\.json$/;
const TEMP_NAME = /^\..*\.tmp$/;

export interface DeliveryLogOptions {
  /** Folder for the records, e.g. `<state_dir>/deliveries`; created if missing. */
  dir: string;
  /** Folder for the journal of recent records (default `<dir>/.journal`). */
  journalDir?: string;
  /** How long a delivery is remembered, in ms (default 7 days). */
  windowMs?: number;
  now?: () => number;
}

export type Claim = { duplicate: true } | { duplicate: false; commit(runs: readonly string[]): Promise<void>; release(): void };

function hashOf(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Deliveries already acted on, remembered for a window so that a redelivered webhook is
 * answered as a duplicate, also after a restart. One file per delivery, named by the sha256
 * of its key (keys are untrusted text); the file's mtime is the time, its contents are for
 * humans. A commit is durable once it is in the journal (see JournaledFolder), which is shared
 * with the commits around it. In memory: one entry per delivery, hash → time.
 */
export class DeliveryLog {
  readonly #dir: string;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  readonly #files: JournaledFolder;

  constructor(options: DeliveryLogOptions) {
    const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    if (!Number.isFinite(windowMs) || windowMs <= 0) {
      throw new DeployhookError('INVALID_OPTION', `Expected the \`windowMs\` option to be a positive number of milliseconds, got \`${String(windowMs)}\``);
    }
    this.#dir = options.dir;
    this.#windowMs = windowMs;
    this.#now = options.now ?? Date.now;
    this.#files = new JournaledFolder({ root: options.dir, journalDir: options.journalDir ?? join(options.dir, '.journal') });
  }

  /** Number of keys remembered (for tests/metrics). */
  get size(): number {
    return this.#seen.size;
  }

  #file(hash: string): string {
    return join(this.#dir, `${hash}.json`);
  }

  /**
   * Applies the journal left by the last process, reads file names and mtimes (not contents),
   * removes expired records and leftover temp files. Returns how many were loaded.
   */
  async open(): Promise<number> {
    await mkdir(this.#dir, { recursive: true });
    await this.#files.replay();
    const entries = await readdir(this.#dir, { withFileTypes: true });
    await Promise.all(
      entries.map(async (entry) => {
        if (!entry.isFile()) return;
        if (TEMP_NAME.test(entry.name)) return removeFile(join(this.#dir, entry.name));
        const hash = RECORD_NAME.exec(entry.name)?.[1];
        if (hash === undefined) return;
        const info = await stat(join(this.#dir, entry.name)).catch((error: unknown) => {
          if (isNotFound(error)) return undefined;
          throw error;
        });
        if (info) this.#seen.set(hash, Math.max(info.mtimeMs, this.#seen.get(hash) ?? 0));
      }),
    );
    await this.prune();
    return this.#seen.size;
  }

  /**
   * Synchronously claims a key: duplicate if it was recorded within the window or is claimed
   * right now by a delivery still in flight. `commit(runs)` writes the record durably and keeps
   * the key; `release()` forgets an in-flight claim so that the sender's retry is accepted.
   */
  claim(key: string): Claim {
    const hash = hashOf(key);
    const seenAt = this.#seen.get(hash);
    if (this.#inFlight.has(hash) || (seenAt !== undefined && seenAt > this.#now() - this.#windowMs)) return { duplicate: true };
    this.#inFlight.add(hash);
    let settled = false;
    return {
      duplicate: false,
      commit: async (runs) => {
        if (settled) throw new DeployhookError('CLAIM_SETTLED', `Expected an open claim for delivery ${JSON.stringify(key)}, but it was already committed or released`);
        settled = true;
        const time = this.#now();
        try {
          // A new key's file is created in place (its name and mtime are what counts); the
          // file of a key seen before, in an earlier window, is replaced.
          const data = `${JSON.stringify({ key, time: new Date(time).toISOString(), runs }, null, 2)}\n`;
          await this.#files.write([{ file: this.#file(hash), data, create: seenAt === undefined }]);
        } finally {
          // The runs are queued either way: remember the key in memory even when the write
          // failed, so that at least this process does not act on the delivery twice.
          this.#seen.set(hash, time);
          this.#inFlight.delete(hash);
        }
      },
      release: () => {
        if (settled) return;
        settled = true;
        this.#inFlight.delete(hash);
      },
    };
  }

  /** Puts every acknowledged record in place now. */
  place(): Promise<void> {
    return this.#files.place();
  }

  /** Puts everything in place durably and empties the journal, so that the next start replays nothing. */
  close(): Promise<void> {
    return this.#files.close();
  }

  /** Removes records older than the window, on disk and in memory. Returns how many were removed. */
  async prune(): Promise<number> {
    const cutoff = this.#now() - this.#windowMs;
    const expired = [...this.#seen].filter(([hash, time]) => time <= cutoff && !this.#inFlight.has(hash)).map(([hash]) => hash);
    for (const hash of expired) this.#seen.delete(hash);
    await this.#files.write(expired.map((hash) => ({ file: this.#file(hash), remove: true as const })));
    return expired.length;
  }
}
