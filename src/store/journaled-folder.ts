import { mkdir, open, readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { DeployhookError } from '../errors.js';
import { createFile, removeFile, replaceFile } from './atomic-write.js';
import { syncFileSystem, syncFolder } from './folder-sync.js';
import { decodeSegment, type JournalEntry } from './journal-frame.js';
import { Journal, type JournalOptions } from './journal.js';

/**
 * A file to write or remove. With `create`, the file is new and only its existence matters
 * afterwards: it is written in place, and a replay writes it only where it is missing. With
 * `fresh`, the caller knows that no file has this name yet (a new run's record): if it is
 * removed before it was ever written, nothing touches the disk.
 */
export type FileChange = { file: string; data: string | Buffer; create?: boolean; fresh?: boolean } | { file: string; remove: true };

/** The change still to be made to one file, the newest of those written to the journal. */
interface PendingChange {
  op: 'put' | 'create' | 'delete';
  data: string | Buffer;
  /** No file has this name on disk: a removal needs no unlink. */
  absent: boolean;
  /** Resolves once the change's journal entry is written: the file must not change before. */
  after: Promise<unknown>;
}

export interface JournaledFolderOptions extends Pick<JournalOptions, 'maxSegmentBytes' | 'datasync'> {
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
}

const DEFAULT_DELAY_MS = 30_000;
const DEFAULT_PLACE_DELAY_MS = 1_000;
const DEFAULT_MAX_WAITING_BYTES = 8 * 1024 * 1024;
/** More files than this to make durable at once are made durable with one sync of the file system. */
const MAX_FILE_SYNCS = 32;
/** Files put in place at the same time (see #placeBatch). */
const PLACE_CONCURRENCY = 2;

function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r').catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  if (!handle) return;
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A folder of files written through a journal. A write is acknowledged once its entry is
 * fdatasynced in the journal (shared with every write in the same batch). The files change
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
  /** For each segment of this process: the paths written to it. */
  readonly #segments = new Map<number, Set<string>>();
  /** Changes written to the journal but not yet made in place, by file. */
  readonly #waiting = new Map<string, PendingChange>();
  #waitingBytes = 0;
  #placeTimer: NodeJS.Timeout | undefined;
  /** The batch being put in place; the next one starts after it. */
  #placing: Promise<void> = Promise.resolve();
  /** A segment is closed this long after the first write to it. */
  #closeArmed = false;
  #checkpoints: Promise<void> = Promise.resolve();

  constructor(options: JournaledFolderOptions) {
    this.#root = options.root;
    this.#delayMs = options.checkpointDelayMs ?? DEFAULT_DELAY_MS;
    this.#placeDelayMs = options.placeDelayMs ?? DEFAULT_PLACE_DELAY_MS;
    this.#maxWaitingBytes = options.maxWaitingBytes ?? DEFAULT_MAX_WAITING_BYTES;
    this.#journal = new Journal(options.journalDir, {
      ...(options.maxSegmentBytes !== undefined ? { maxSegmentBytes: options.maxSegmentBytes } : {}),
      ...(options.datasync !== undefined ? { datasync: options.datasync } : {}),
      onClosed: (segment) => this.#schedule(segment, this.#delayMs),
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
      return { op: change.create ? 'create' : 'put', path, data: typeof change.data === 'string' ? Buffer.from(change.data) : change.data };
    });
    const { written, durable } = this.#journal.append(entries);
    written.then((segment) => {
      const paths = this.#segments.get(segment) ?? new Set<string>();
      this.#segments.set(segment, paths);
      for (const entry of entries) paths.add(entry.path);
    }, () => undefined);
    if (!this.#closeArmed) {
      this.#closeArmed = true;
      setTimeout(() => {
        this.#closeArmed = false;
        this.#journal.closeSegment().catch(() => undefined);
      }, this.#delayMs).unref();
    }
    await durable;
    for (const change of changes) this.#wait(change, written);
    this.#armPlacing();
  }

  /** The content a file has or is about to have; undefined when it is or will be gone. */
  async read(file: string): Promise<Buffer | undefined> {
    const waiting = this.#waiting.get(file);
    if (waiting) return waiting.op === 'delete' ? undefined : Buffer.from(waiting.data);
    await this.#placing.catch(() => undefined);
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
    await this.#serial(async () => {
      await this.place();
      for (const segment of [...this.#segments.keys()]) await this.#checkpoint(segment);
    });
  }

  #wait(change: FileChange, after: Promise<unknown>): void {
    const earlier = this.#waiting.get(change.file);
    if (earlier) this.#waitingBytes -= earlier.data.length;
    if ('remove' in change) {
      if (earlier?.absent) this.#waiting.delete(change.file);
      else this.#waiting.set(change.file, { op: 'delete', data: '', absent: false, after });
      return;
    }
    const absent = earlier ? earlier.absent : change.create === true || change.fresh === true;
    // A file never written yet may still be created in place; one that exists is replaced.
    const op = change.create && (earlier === undefined || earlier.op === 'create') ? 'create' : 'put';
    this.#waiting.set(change.file, { op, data: change.data, absent, after });
    this.#waitingBytes += change.data.length;
  }

  #armPlacing(): void {
    if (this.#waitingBytes >= this.#maxWaitingBytes) {
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
   * Puts a batch in place, PLACE_CONCURRENCY files at a time: Node's thread pool serves file
   * operations in order, and a batch of hundreds at once would hold the journal's next write
   * and fdatasync (and so every acknowledgement) behind all of them. Changes that fail stay
   * waiting (unless a newer one came), for the next batch or checkpoint.
   */
  async #placeBatch(batch: ReadonlyArray<[string, PendingChange]>): Promise<void> {
    const failures: unknown[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batch.length) {
        const [file, change] = batch[next++] as [string, PendingChange];
        try {
          await change.after;
          if (change.op === 'delete') await removeFile(file);
          else if (change.op === 'create') await createFile(file, change.data);
          else await replaceFile(file, change.data);
        } catch (error) {
          failures.push(error);
          if (!this.#waiting.has(file)) {
            this.#waiting.set(file, change);
            this.#waitingBytes += change.data.length;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PLACE_CONCURRENCY, batch.length) }, worker));
    if (failures.length > 0) {
      this.#armPlacing();
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
      for (const [path, entry] of last) {
        const file = this.#resolve(path);
        if (file === undefined) continue;
        if (entry.op === 'delete') await removeFile(file);
        else if (entry.op === 'put' || !(await stat(file).then((info) => info.size > 0, () => false))) {
          await mkdir(dirname(file), { recursive: true });
          await replaceFile(file, entry.data);
        }
        touched.add(path);
      }
    }
    await this.#makeDurable(touched);
    await this.#journal.remove(segments);
    return touched.size;
  }

  /** Folds a closed segment in after `delayMs`; one that fails is tried again later. */
  #schedule(segment: number, delayMs: number): void {
    setTimeout(() => {
      this.#serial(() => this.#checkpoint(segment)).catch(() => this.#schedule(segment, this.#delayMs));
    }, delayMs).unref();
  }

  /** Checkpoints run one at a time. */
  #serial(task: () => Promise<void>): Promise<void> {
    const run = this.#checkpoints.then(task);
    this.#checkpoints = run.catch(() => undefined);
    return run;
  }

  async #checkpoint(segment: number): Promise<void> {
    const paths = this.#segments.get(segment);
    if (paths) {
      // A closed segment's entries are all written, so waiting changes include all of its own.
      await this.place();
      await this.#makeDurable(paths);
    }
    await this.#journal.remove([segment]);
    this.#segments.delete(segment);
  }

  /**
   * fsyncs each file (one that is gone is skipped), then each folder they are in. Many files
   * are made durable with one sync of the whole file system instead.
   */
  async #makeDurable(paths: ReadonlySet<string>): Promise<void> {
    if (paths.size > MAX_FILE_SYNCS && (await syncFileSystem(this.#root).then(() => true, () => false))) return;
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
    const path = relative(this.#root, file);
    if (this.#resolve(path) === undefined) throw new DeployhookError('OUTSIDE_FOLDER', `Expected a file under ${this.#root}, got ${JSON.stringify(file)}`);
    return path;
  }

  /** The file a journal path names, or undefined when it would leave the folder. */
  #resolve(path: string): string | undefined {
    if (path === '' || isAbsolute(path) || normalize(path) !== path || path.split(sep).includes('..')) return undefined;
    return join(this.#root, path);
  }
}
