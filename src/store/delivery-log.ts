import { createHash } from 'node:crypto';
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DeployhookError } from '../errors.js';
import { decodeSegment, type JournalEntry } from './journal-frame.js';
import { syncFolder } from './folder-sync.js';
import { Journal } from './journal.js';
import { JournaledFolder } from './journaled-folder.js';
import { isNotFound, removeFile } from './remove-file.js';

const DEFAULT_WINDOW_MS = 7 * 24 * 60 * 60 * 1000;
const HASH = /^[0-9a-f]{64}$/;
const LEGACY_RECORD = /^([0-9a-f]{64})\.json$/;
const LEGACY_TEMP = /^\..*\.tmp$/;
const LEGACY_BATCH = 1000;

export interface DeliveryLogOptions {
  /** Folder for the log's segments, e.g. `<state_dir>/deliveries`; created if missing. */
  dir: string;
  /**
   * Where versions that kept one file per delivery had the journal of those files. Read once
   * by `open()`, with the files, into the log; then both are removed.
   */
  legacyJournalDir?: string;
  /** How long a delivery is remembered, in ms (default 7 days). */
  windowMs?: number;
  now?: () => number;
}

/**
 * `inFlight`: the key is claimed right now by a delivery still being recorded, which may yet
 * fail; the caller must not acknowledge this one as a duplicate (the first may be released).
 */
export type Claim = { duplicate: true; inFlight: boolean } | { duplicate: false; commit(runs: readonly string[]): Promise<void>; release(): void };

function hashOf(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A record's time (ms), or undefined for an entry that is not a record. */
function timeOf(entry: JournalEntry): number | undefined {
  if (entry.op === 'delete' || !HASH.test(entry.path)) return undefined;
  try {
    const time = Date.parse((JSON.parse(entry.data.toString('utf8')) as { time?: unknown }).time as string);
    return Number.isFinite(time) ? time : undefined;
  } catch {
    return undefined;
  }
}

function record(hash: string, fields: Record<string, unknown>, time: number): JournalEntry {
  return { op: 'put', path: hash, data: Buffer.from(`${JSON.stringify({ ...fields, time: new Date(time).toISOString() })}\n`) };
}

/**
 * Deliveries already acted on, remembered for a window so that a redelivered webhook is
 * answered as a duplicate, also after a restart. An append-only log of numbered segments
 * (see Journal): one framed record per delivery, named by the sha256 of its key (keys are
 * untrusted text), holding the key, the time and the runs it queued as JSON. A commit is
 * durable once its record's write returns (O_DSYNC), shared with the commits around it. A
 * segment is deleted once its newest record has left the window; the one being written is
 * closed at each prune, so that it can leave too. In memory: one entry per delivery, hash →
 * time.
 *
 * No file per delivery: creating a file costs the file system far more than appending to one
 * (on the benchmark host 0.25–0.8 ms of CPU per new file, against a share of one write).
 */
export class DeliveryLog {
  readonly #dir: string;
  readonly #legacyJournalDir: string | undefined;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #seen = new Map<string, number>();
  readonly #inFlight = new Set<string>();
  readonly #journal: Journal;
  /** Per segment on disk, the time of its newest record. */
  readonly #newest = new Map<number, number>();
  /** The segment this process is writing; it is not deleted. */
  #writing: number | undefined;

  constructor(options: DeliveryLogOptions) {
    const windowMs = options.windowMs ?? DEFAULT_WINDOW_MS;
    if (!Number.isFinite(windowMs) || windowMs <= 0) {
      throw new DeployhookError('INVALID_OPTION', `Expected the \`windowMs\` option to be a positive number of milliseconds, got \`${String(windowMs)}\``);
    }
    this.#dir = options.dir;
    this.#legacyJournalDir = options.legacyJournalDir;
    this.#windowMs = windowMs;
    this.#now = options.now ?? Date.now;
    this.#journal = new Journal(options.dir, {
      onClosed: (segment) => {
        if (this.#writing === segment) this.#writing = undefined;
        // A segment whose first write failed holds nothing acknowledged: it goes at the next prune.
        if (!this.#newest.has(segment)) this.#newest.set(segment, 0);
      },
    });
  }

  /** Number of keys remembered (for tests/metrics). */
  get size(): number {
    return this.#seen.size;
  }

  #remember(hash: string, time: number): void {
    this.#seen.set(hash, Math.max(time, this.#seen.get(hash) ?? 0));
  }

  /**
   * Reads the segments left by earlier processes (a record cut short by a crash was never
   * acknowledged and is ignored), takes in the records of a version that kept one file per
   * delivery, and forgets what has left the window. Returns how many deliveries are remembered.
   */
  async open(): Promise<number> {
    for (const segment of await this.#journal.earlierSegments()) {
      let newest = 0;
      for (const entry of decodeSegment(await this.#journal.read(segment)).entries) {
        const time = timeOf(entry);
        if (time === undefined) continue;
        this.#remember(entry.path, time);
        newest = Math.max(newest, time);
      }
      this.#newest.set(segment, newest);
    }
    await this.#takeInLegacy();
    await this.prune();
    return this.#seen.size;
  }

  /**
   * Earlier versions kept `<dir>/<sha256>.json` per delivery (its mtime the time) and a
   * journal of them: the journal is applied, the files' records are appended to the log
   * durably, and only then are the files and that journal removed.
   */
  async #takeInLegacy(): Promise<void> {
    const legacyJournal = this.#legacyJournalDir !== undefined && (await stat(this.#legacyJournalDir).then(() => true, () => false)) ? this.#legacyJournalDir : undefined;
    if (legacyJournal !== undefined) await new JournaledFolder({ root: this.#dir, journalDir: legacyJournal }).replay();
    const cutoff = this.#now() - this.#windowMs;
    const found: string[] = [];
    const records: Array<{ entry: JournalEntry; time: number }> = [];
    // The folder is made (and made durable) with the first segment.
    const entries = await readdir(this.#dir, { withFileTypes: true }).catch((error: unknown) => {
      if (isNotFound(error)) return [];
      throw error;
    });
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const file = join(this.#dir, entry.name);
      if (LEGACY_TEMP.test(entry.name)) found.push(file);
      const hash = LEGACY_RECORD.exec(entry.name)?.[1];
      if (hash === undefined) continue;
      found.push(file);
      const info = await stat(file).catch((error: unknown) => {
        if (isNotFound(error)) return undefined;
        throw error;
      });
      if (info === undefined || info.mtimeMs <= cutoff) continue;
      // The contents are for humans (key and runs) and may be cut short: the mtime counts.
      const fields = await readFile(file, 'utf8').then((text) => JSON.parse(text) as Record<string, unknown>).catch(() => ({}));
      records.push({ entry: record(hash, fields, info.mtimeMs), time: info.mtimeMs });
      this.#remember(hash, info.mtimeMs);
    }
    // In batches of LEGACY_BATCH records, each durable before the files go.
    const appended: Array<Promise<void>> = [];
    for (let start = 0; start < records.length; start += LEGACY_BATCH) {
      const batch = records.slice(start, start + LEGACY_BATCH);
      let newest = 0;
      for (const { time } of batch) newest = Math.max(newest, time);
      const { written, durable } = this.#journal.append(batch.map(({ entry }) => entry));
      this.#track(written, newest);
      appended.push(durable);
    }
    await Promise.all(appended);
    // The journal first, and durably: applied again after a crash, it would renew the files' mtimes.
    if (legacyJournal !== undefined) {
      await rm(legacyJournal, { recursive: true, force: true });
      await syncFolder(dirname(legacyJournal));
    }
    for (const file of found) await removeFile(file);
  }

  /** Notes the segment a record went to, and its time. */
  #track(written: Promise<number>, time: number): void {
    written.then(
      (segment) => {
        this.#writing = segment;
        this.#newest.set(segment, Math.max(time, this.#newest.get(segment) ?? 0));
      },
      () => undefined,
    );
  }

  /**
   * Synchronously claims a key: duplicate if it was recorded within the window, or (in flight)
   * if it is claimed right now by a delivery still being recorded. `commit(runs)` writes the record durably and keeps
   * the key; `release()` forgets an in-flight claim so that the sender's retry is accepted.
   */
  claim(key: string): Claim {
    const hash = hashOf(key);
    const seenAt = this.#seen.get(hash);
    if (this.#inFlight.has(hash)) return { duplicate: true, inFlight: true };
    if (seenAt !== undefined && seenAt > this.#now() - this.#windowMs) return { duplicate: true, inFlight: false };
    this.#inFlight.add(hash);
    let settled = false;
    return {
      duplicate: false,
      commit: async (runs) => {
        if (settled) throw new DeployhookError('CLAIM_SETTLED', `Expected an open claim for delivery ${JSON.stringify(key)}, but it was already committed or released`);
        settled = true;
        const time = this.#now();
        try {
          const { written, durable } = this.#journal.append([record(hash, { key, runs }, time)]);
          this.#track(written, time);
          await durable;
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

  /** Waits for every commit so far and closes the segment being written. */
  close(): Promise<void> {
    return this.#journal.closeSegment();
  }

  /**
   * Forgets records older than the window, in memory, and deletes the segments whose newest
   * record is older; closes the segment being written, so that it can leave the window whole
   * later. Returns how many deliveries were forgotten.
   */
  async prune(): Promise<number> {
    const cutoff = this.#now() - this.#windowMs;
    const expired = [...this.#seen].filter(([hash, time]) => time <= cutoff && !this.#inFlight.has(hash)).map(([hash]) => hash);
    for (const hash of expired) this.#seen.delete(hash);
    if (this.#writing !== undefined) await this.#journal.closeSegment();
    const gone = [...this.#newest].filter(([segment, newest]) => newest <= cutoff && segment !== this.#writing).map(([segment]) => segment);
    await this.#journal.remove(gone);
    for (const segment of gone) this.#newest.delete(segment);
    return expired.length;
  }
}
