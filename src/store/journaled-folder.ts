import { mkdir, open, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { DeployhookError } from '../errors.js';
import { createFile, removeFile, replaceFile } from './atomic-write.js';
import { syncFolder } from './folder-sync.js';
import { decodeSegment, type JournalEntry } from './journal-frame.js';
import { Journal, type JournalOptions } from './journal.js';

/**
 * A file to write or remove. With `create`, the file is new and only its existence matters
 * afterwards: it is written in place, and a replay writes it only where it is missing.
 */
export type FileChange = { file: string; data: string | Buffer; create?: boolean } | { file: string; remove: true };

export interface JournaledFolderOptions extends Pick<JournalOptions, 'maxSegmentBytes' | 'datasync'> {
  /** The folder whose files are written (absolute paths under it). */
  root: string;
  /** Where the journal's segments live. */
  journalDir: string;
  /** How long a segment stays open, and then how long a closed one waits before it is folded in (default 30 s each). */
  checkpointDelayMs?: number;
}

const DEFAULT_DELAY_MS = 30_000;

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
 * fdatasynced in the journal (shared with every write in the same batch) and the file has
 * been renamed into place, without an fsync of its own. A closed journal segment is folded
 * in later, when the kernel has most likely written those files back already: each file it
 * touched and each folder are fsynced, then the segment is deleted. At start, `replay`
 * rewrites what earlier segments hold, so a crash at any point loses nothing acknowledged.
 */
export class JournaledFolder {
  readonly #root: string;
  readonly #delayMs: number;
  readonly #journal: Journal;
  /** For each segment of this process: the paths written to it and the renames still in progress. */
  readonly #segments = new Map<number, { paths: Set<string>; visible: Set<Promise<unknown>> }>();
  /** A segment is closed this long after the first write to it. */
  #closeArmed = false;
  #checkpoints: Promise<void> = Promise.resolve();

  constructor(options: JournaledFolderOptions) {
    this.#root = options.root;
    this.#delayMs = options.checkpointDelayMs ?? DEFAULT_DELAY_MS;
    this.#journal = new Journal(options.journalDir, {
      ...(options.maxSegmentBytes !== undefined ? { maxSegmentBytes: options.maxSegmentBytes } : {}),
      ...(options.datasync !== undefined ? { datasync: options.datasync } : {}),
      onClosed: (segment) => this.#schedule(segment, this.#delayMs),
    });
  }

  /**
   * Writes and removes files as one journal entry group. Resolves once the changes are durable
   * (in the journal) and visible (in place); rejects if either failed.
   */
  async write(changes: readonly FileChange[]): Promise<void> {
    if (changes.length === 0) return;
    const entries = changes.map((change): JournalEntry => {
      const path = this.#relative(change.file);
      if ('remove' in change) return { op: 'delete', path };
      return { op: change.create ? 'create' : 'put', path, data: typeof change.data === 'string' ? Buffer.from(change.data) : change.data };
    });
    const { written, durable } = this.#journal.append(entries);
    // A file changes only once its entry is in the journal: a replay never rolls it back.
    const visible = Promise.all(
      changes.map((change) => {
        if ('remove' in change) return written.then(() => removeFile(change.file));
        if (change.create) return written.then(() => createFile(change.file, change.data));
        return replaceFile(change.file, change.data, { after: written });
      }),
    );
    written.then((segment) => {
      const tracked = this.#segments.get(segment) ?? { paths: new Set<string>(), visible: new Set<Promise<unknown>>() };
      this.#segments.set(segment, tracked);
      for (const entry of entries) tracked.paths.add(entry.path);
      const settled = visible.catch(() => undefined);
      tracked.visible.add(settled);
      void settled.then(() => tracked.visible.delete(settled));
    }, () => undefined);
    if (!this.#closeArmed) {
      this.#closeArmed = true;
      setTimeout(() => {
        this.#closeArmed = false;
        this.#journal.closeSegment().catch(() => undefined);
      }, this.#delayMs).unref();
    }
    await Promise.all([durable, visible]);
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
    const tracked = this.#segments.get(segment);
    if (tracked) {
      await Promise.all(tracked.visible);
      await this.#makeDurable(tracked.paths);
    }
    await this.#journal.remove([segment]);
    this.#segments.delete(segment);
  }

  /** fsyncs each file (one that is gone is skipped), then each folder they are in. */
  async #makeDurable(paths: ReadonlySet<string>): Promise<void> {
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
