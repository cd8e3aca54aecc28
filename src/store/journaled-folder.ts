import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { DeployhookError } from '../errors.js';
import { isNotFound } from './remove-file.js';
import { filePlacer } from './file-placer.js';
import { fsyncPath, syncFileSystem, syncFolder, WriteBackError } from './folder-sync.js';
import { decodeSegment, type JournalEntry } from './journal-frame.js';
import { Journal, type JournalOptions } from './journal.js';
import type { Placement } from './place-files.js';

/**
 * A file to write or remove. With `fresh`, the caller knows that no file has this name yet
 * (a new run's record): if it is removed before it was ever written, nothing touches the disk.
 */
export type FileChange = { file: string; data: string | Buffer; fresh?: boolean } | { file: string; remove: true };

/** The change still to be made to one file, the newest of those written to the journal. */
interface PendingChange {
  op: 'put' | 'delete';
  data: string | Buffer;
  /** No file has this name on disk: a removal needs no unlink. */
  absent: boolean;
  /** Resolves once the change's journal entry is written: the file must not change before. */
  after: Promise<unknown>;
  /** Changes are numbered in the order they were acknowledged. */
  seq: number;
}

export interface JournaledFolderOptions extends Pick<JournalOptions, 'maxSegmentBytes' | 'write'> {
  /** The folder whose files are written (absolute paths under it). */
  root: string;
  /** Where the journal's segments live. */
  journalDir: string;
  /** How long a segment stays open, and then how long a closed one waits before it is folded in (default 30 s each). */
  checkpointDelayMs?: number;
  /** How long a change waits in memory before it is made in place (default 1 s): later changes of the same file replace it. */
  placeDelayMs?: number;
  /** Changes waiting with more data than this are made in place at once (default 8 MiB). */
  maxWaitingBytes?: number;
  /** Told after each batch put in place: its first failure, or undefined when all went in. */
  onPlaced?: (failure: Error | undefined) => void;
  /** Told when a segment's files could not be made durable: it is kept until the next start (see #checkpoint). */
  onKept?: (failure: Error) => void;
}

const DEFAULT_DELAY_MS = 30_000;
const DEFAULT_PLACE_DELAY_MS = 1_000;
const DEFAULT_MAX_WAITING_BYTES = 8 * 1024 * 1024;
/** More files than this to make durable at once are made durable with one sync of the file system. */
const MAX_FILE_SYNCS = 32;
/** Acknowledgements wait for the batches once this many times maxWaitingBytes wait or are in batches. */
const BACKPRESSURE_FACTOR = 4;
/** Files sent to the placing thread at once (see #placeBatch). */
const PLACE_CHUNK = 64;

/** A relative path that stays inside its folder: no empty, `.` or `..` part. */
function isPlainPath(path: string): boolean {
  return !isAbsolute(path) && path.split(sep).every((part) => part !== '' && part !== '.' && part !== '..');
}

/** Makes placements in order on the placing thread; throws the first failure. */
async function placeAll(placements: readonly Placement[]): Promise<void> {
  for (let start = 0; start < placements.length; start += PLACE_CHUNK) {
    const failure = (await filePlacer.place(placements.slice(start, start + PLACE_CHUNK))).find((result) => result !== undefined);
    if (failure) throw failure;
  }
}

/** fsyncs a file; one that is gone is skipped. */
async function fsyncFile(file: string): Promise<void> {
  await fsyncPath(file).catch((error: unknown) => {
    if (!isNotFound(error)) throw error;
  });
}

/**
 * A folder of files written through a journal. A write is acknowledged once its entry is
 * on disk in the journal (one O_DSYNC write shared with every write in the same batch). The files change
 * in place later, in batches (`placeDelayMs`, or at once with `place()`): a file changed
 * several times in between is written once, with its last content, and a new file removed
 * in between is never written. A closed journal segment is folded in later still, when the
 * kernel has most likely written those files back: what is waiting is put in place, each
 * file the segment touched and each folder are fsynced, then the segment is deleted. At
 * start, `replay` rewrites what earlier segments hold, so a crash at any point loses nothing
 * acknowledged. Until a change is in place, `read` answers from memory.
 */
export class JournaledFolder {
  readonly #root: string;
  readonly #delayMs: number;
  readonly #placeDelayMs: number;
  readonly #maxWaitingBytes: number;
  readonly #journal: Journal;
  /** For each segment of this process: the paths written to it, and the number of its last acknowledged change. */
  readonly #segments = new Map<number, { paths: Set<string>; lastSeq: number }>();
  /** Segments closed and not yet folded in. */
  readonly #closed = new Set<number>();
  /** Changes written to the journal but not yet taken into a batch, by file. */
  readonly #waiting = new Map<string, PendingChange>();
  #seq = 0;
  readonly #onPlaced: ((failure: Error | undefined) => void) | undefined;
  #waitingBytes = 0;
  /** Changes taken into a batch and not yet done, by file, and their bytes. */
  readonly #inBatch = new Map<string, PendingChange>();
  #inBatchBytes = 0;
  #placeTimer: NodeJS.Timeout | undefined;
  /** Files being put in place ahead of the batches (writeThrough). */
  readonly #writingThrough = new Map<string, Promise<void>>();
  /** The batch being put in place; the next one starts after it. */
  #placing: Promise<void> = Promise.resolve();
  /** A segment is closed this long after the first write to it. */
  #closeArmed = false;
  #checkpoints: Promise<void> = Promise.resolve();
  /** Segments whose files could not be made durable: kept for the next start's replay, as is every later one. */
  readonly #kept = new Set<number>();
  readonly #onKept: ((failure: Error) => void) | undefined;

  constructor(options: JournaledFolderOptions) {
    this.#root = options.root;
    this.#delayMs = options.checkpointDelayMs ?? DEFAULT_DELAY_MS;
    this.#placeDelayMs = options.placeDelayMs ?? DEFAULT_PLACE_DELAY_MS;
    this.#maxWaitingBytes = options.maxWaitingBytes ?? DEFAULT_MAX_WAITING_BYTES;
    this.#onPlaced = options.onPlaced;
    this.#onKept = options.onKept;
    this.#journal = new Journal(options.journalDir, {
      ...(options.maxSegmentBytes !== undefined ? { maxSegmentBytes: options.maxSegmentBytes } : {}),
      ...(options.write !== undefined ? { write: options.write } : {}),
      onClosed: (segment) => {
        this.#closed.add(segment);
        this.#schedule(segment, this.#delayMs);
      },
    });
  }

  /**
   * Writes and removes files as one journal entry group. Resolves once the changes are durable
   * (in the journal); rejects if that failed, and then none of them is made in place.
   */
  async write(changes: readonly FileChange[]): Promise<void> {
    if (changes.length === 0) return;
    const entries = changes.map((change): JournalEntry => {
      const path = this.#relative(change.file);
      if ('remove' in change) return { op: 'delete', path };
      return { op: 'put', path, data: typeof change.data === 'string' ? Buffer.from(change.data) : change.data };
    });
    const { written, durable } = this.#journal.append(entries);
    written.then((segment) => {
      const tracked = this.#segments.get(segment) ?? { paths: new Set<string>(), lastSeq: 0 };
      this.#segments.set(segment, tracked);
      for (const entry of entries) tracked.paths.add(entry.path);
    }, () => undefined);
    if (!this.#closeArmed) {
      this.#closeArmed = true;
      setTimeout(() => {
        this.#closeArmed = false;
        this.#journal.closeSegment().catch(() => undefined);
      }, this.#delayMs).unref();
    }
    await durable;
    const segment = await written;
    for (const change of changes) {
      const seq = this.#wait(change, written);
      const tracked = this.#segments.get(segment);
      if (tracked) tracked.lastSeq = seq;
    }
    this.#armPlacing(false);
    // Backpressure: when the disk cannot keep up with putting files in place, acknowledgements
    // wait for it rather than holding ever more content in memory.
    if (this.#waitingBytes + this.#inBatchBytes > BACKPRESSURE_FACTOR * this.#maxWaitingBytes) await this.#placing.catch(() => undefined);
  }

  /**
   * Puts a file that is written once and never changed (a run's payload) in place now, ahead
   * of the batches: with its acknowledged content, whether it waits or is in a batch that has
   * not reached it yet (which writes the same content again later).
   */
  async writeThrough(file: string): Promise<void> {
    const change = this.#waiting.get(file) ?? this.#inBatch.get(file);
    if (change === undefined || change.op === 'delete') return;
    // On disk from now on: a removal must unlink it (not just drop the waiting change), and
    // only once this write is done.
    change.absent = false;
    const writing = change.after.then(() => placeAll([{ file, op: 'put', data: change.data }]));
    this.#writingThrough.set(file, writing);
    try {
      await writing;
    } finally {
      if (this.#writingThrough.get(file) === writing) this.#writingThrough.delete(file);
    }
  }

  /** The content a file has or is about to have; undefined when it is or will be gone. */
  async read(file: string): Promise<Buffer | undefined> {
    const pending = this.#waiting.get(file) ?? this.#inBatch.get(file);
    if (pending) return pending.op === 'delete' ? undefined : Buffer.from(pending.data);
    return readFile(file).catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
  }

  /**
   * Makes the acknowledged changes of `files` (of every file when not given) in place now,
   * after any batch in progress. Not durable: the journal covers that.
   */
  place(files?: readonly string[]): Promise<void> {
    let batch: Array<[string, PendingChange]>;
    if (files === undefined) {
      clearTimeout(this.#placeTimer);
      this.#placeTimer = undefined;
      batch = [...this.#waiting];
      this.#waiting.clear();
      this.#waitingBytes = 0;
    } else {
      batch = files.flatMap((file): Array<[string, PendingChange]> => {
        const change = this.#waiting.get(file);
        if (!change) return [];
        this.#waiting.delete(file);
        this.#waitingBytes -= change.data.length;
        return [[file, change]];
      });
    }
    for (const [file, change] of batch) {
      this.#inBatch.set(file, change);
      this.#inBatchBytes += change.data.length;
    }
    const run = this.#placing.catch(() => undefined).then(() => this.#placeBatch(batch));
    this.#placing = run;
    return run;
  }

  /**
   * Puts everything in place and folds every segment in (the last one is closed first), so
   * that the next start has nothing to replay. Writes after this are still journaled.
   */
  async close(): Promise<void> {
    await this.#journal.closeSegment();
    // Only closed segments: one opened by a write after this call is left for the next start,
    // and so are a kept segment and every one after it.
    await this.#serial(async () => {
      for (const segment of [...this.#closed].sort((a, b) => a - b)) {
        if (this.#kept.size > 0) return;
        await this.#checkpoint(segment);
      }
    });
  }

  /** Queues an acknowledged change to be put in place; returns its number. */
  #wait(change: FileChange, after: Promise<unknown>): number {
    const seq = ++this.#seq;
    const { file } = change;
    const earlier = this.#waiting.get(file);
    if (earlier) this.#waitingBytes -= earlier.data.length;
    if ('remove' in change) {
      if (earlier?.absent) {
        // Never written, and nothing of it in a batch either: nothing to do on disk.
        this.#waiting.delete(file);
      } else {
        this.#waiting.set(file, { op: 'delete', data: '', absent: false, after, seq });
      }
      return seq;
    }
    // A file still being put in place by a batch is not absent, whatever the caller knows.
    const absent = earlier ? earlier.absent : change.fresh === true && !this.#inBatch.has(file);
    this.#waiting.set(file, { op: 'put', data: change.data, absent, after, seq });
    this.#waitingBytes += change.data.length;
    return seq;
  }

  /** The number of the newest change of `file` not yet in place (waiting, else in a batch). */
  #pendingSeq(file: string): number | undefined {
    return (this.#waiting.get(file) ?? this.#inBatch.get(file))?.seq;
  }

  /** After a failure, the next batch waits its delay whatever is waiting: no tight retry loop. */
  #armPlacing(retry: boolean): void {
    if (!retry && this.#waitingBytes >= this.#maxWaitingBytes) {
      this.place().catch(() => undefined);
      return;
    }
    if (this.#placeTimer !== undefined || this.#waiting.size === 0) return;
    this.#placeTimer = setTimeout(() => {
      this.#placeTimer = undefined;
      this.place().catch(() => undefined);
    }, this.#placeDelayMs);
    this.#placeTimer.unref();
  }

  /**
   * Puts a batch in place on the placing thread (see FilePlacer), PLACE_CHUNK files per
   * message, so that no message carries a whole flood at once. That thread is not
   * node's thread pool, so the journal's writes, and with them every
   * acknowledgement, never wait behind it. A change that fails goes back to waiting if it is
   * still the newest of its file (an older one never overwrites a newer), for the next batch
   * or checkpoint.
   */
  async #placeBatch(batch: ReadonlyArray<[string, PendingChange]>): Promise<void> {
    const failures: Error[] = [];
    for (let start = 0; start < batch.length; start += PLACE_CHUNK) {
      const chunk = batch.slice(start, start + PLACE_CHUNK);
      let results: Array<Error | undefined>;
      try {
        // A file changes only after its change's journal entry is written, and after a write
        // of it ahead of the batches.
        await Promise.all(chunk.flatMap(([file, change]) => [change.after, this.#writingThrough.get(file)?.catch(() => undefined)]));
        results = await filePlacer.place(chunk.map(([file, change]) => ({ file, op: change.op, data: change.data })));
      } catch (error) {
        results = chunk.map(() => error as Error);
      }
      chunk.forEach(([file, change], index) => {
        const failure = results[index];
        if (failure) {
          failures.push(failure);
          if (this.#pendingSeq(file) === change.seq) {
            this.#waiting.set(file, change);
            this.#waitingBytes += change.data.length;
          }
        }
        if (this.#inBatch.get(file) === change) this.#inBatch.delete(file);
        this.#inBatchBytes -= change.data.length;
      });
    }
    this.#onPlaced?.(failures[0]);
    if (failures.length > 0) {
      this.#armPlacing(true);
      throw failures[0];
    }
  }

  /**
   * Applies what journal segments left by an earlier process hold (the last change of each
   * file wins), makes it durable in place, and deletes those segments. Returns how many files
   * were rewritten or removed.
   */
  async replay(): Promise<number> {
    const segments = await this.#journal.earlierSegments();
    const touched = new Set<string>();
    for (const segment of segments) {
      const last = new Map<string, JournalEntry>();
      for (const entry of decodeSegment(await this.#journal.read(segment)).entries) last.set(entry.path, entry);
      const placements: Placement[] = [];
      for (const [path, entry] of last) {
        const file = this.#resolve(path);
        if (file === undefined) continue;
        if (entry.op === 'delete') placements.push({ file, op: 'delete', data: '' });
        // `create` entries come from journals of earlier versions (one file per delivery).
        else if (entry.op === 'put' || !(await stat(file).then((info) => info.size > 0, () => false))) placements.push({ file, op: 'put', data: entry.data });
        touched.add(path);
      }
      // Segment by segment: a later segment's check for a missing file sees what this one wrote.
      await placeAll(placements);
    }
    await this.#makeDurable(touched);
    await this.#journal.remove(segments);
    return touched.size;
  }

  /**
   * Folds a closed segment in after `delayMs`; one that fails is tried again later, unless a
   * segment is kept: none after it may be folded in before the next start.
   */
  #schedule(segment: number, delayMs: number): void {
    setTimeout(() => {
      if (this.#kept.size > 0) return;
      this.#serial(() => this.#checkpoint(segment)).catch(() => {
        if (this.#kept.size === 0) this.#schedule(segment, this.#delayMs);
      });
    }, delayMs).unref();
  }

  /** Checkpoints run one at a time. */
  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#checkpoints.then(task);
    this.#checkpoints = run.catch(() => undefined);
    return run;
  }

  /**
   * Folds a closed segment in: its changes in place and durable, then the segment deleted. Not
   * while an earlier segment is still there (a replay of it after a crash would roll back what
   * this one wrote) or while one of its changes could not be put in place (it is only in
   * memory and in this segment): it throws, and is tried again later.
   */
  async #checkpoint(segment: number): Promise<void> {
    const tracked = this.#segments.get(segment);
    if (tracked) {
      const earlier = [...this.#segments.keys()].filter((other) => other < segment);
      if (earlier.length > 0) throw new DeployhookError('CHECKPOINT_ORDER', `Expected journal segment ${earlier[0]} to be folded in before ${segment}`);
      // A closed segment's entries are all acknowledged: after this, none of them is waiting.
      await this.place();
      const unplaced = [...tracked.paths].filter((path) => (this.#pendingSeq(join(this.#root, path)) ?? Infinity) <= tracked.lastSeq);
      if (unplaced.length > 0) throw new DeployhookError('NOT_IN_PLACE', `Expected every change of journal segment ${segment} in place, but ${unplaced.length} are not (first: ${unplaced[0]})`);
      // A failed fsync is never tried again: Linux reports a failed write-back once, then marks
      // the pages clean, so a second fsync succeeds with the data still not on disk. The segment
      // stays, and so (by the order above) does every later one, for the next start's replay,
      // which writes every file again before it makes them durable.
      await this.#makeDurable(tracked.paths).catch((error: unknown) => {
        // Anything else (a file that could not be opened) left what was written as it was.
        if (!(error instanceof WriteBackError)) throw error;
        this.#kept.add(segment);
        this.#onKept?.(error);
        throw error;
      });
    }
    await this.#journal.remove([segment]);
    this.#segments.delete(segment);
    this.#closed.delete(segment);
  }

  /**
   * fsyncs each file (one that is gone is skipped), then each folder they are in. Many files
   * are made durable with one sync of the whole file system instead.
   */
  async #makeDurable(paths: ReadonlySet<string>): Promise<void> {
    if (paths.size > MAX_FILE_SYNCS) {
      const synced = await syncFileSystem(this.#root).then(
        () => true,
        (error: unknown) => {
          // It ran, and failed: fsyncs after it could succeed with nothing written.
          if (error instanceof WriteBackError) throw error;
          return false;
        },
      );
      if (synced) return;
    }
    const folders = new Set<string>([this.#root, dirname(this.#root)]);
    for (const path of paths) {
      const file = join(this.#root, path);
      await fsyncFile(file);
      folders.add(dirname(file));
    }
    for (const folder of folders) {
      await syncFolder(folder).catch((error: unknown) => {
        if (!isNotFound(error)) throw error;
      });
    }
  }

  #relative(file: string): string {
    // The common case, a plain path under the root, without path.relative's work per write.
    const prefix = this.#root.endsWith(sep) ? this.#root : `${this.#root}${sep}`;
    const path = file.startsWith(prefix) ? file.slice(prefix.length) : relative(this.#root, file);
    if (!isPlainPath(path)) throw new DeployhookError('OUTSIDE_FOLDER', `Expected a file under ${this.#root}, got ${JSON.stringify(file)}`);
    return path;
  }

  /** The file a journal path names, or undefined when it would leave the folder. */
  #resolve(path: string): string | undefined {
    return isPlainPath(path) ? join(this.#root, path) : undefined;
  }
}
