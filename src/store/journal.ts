import { constants, type FileHandle, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployhookError } from '../errors.js';
import { isNotFound, removeFile } from './remove-file.js';
import { makeFolderDurably, syncFolder } from './folder-sync.js';
import { encodeEntry, type JournalEntry } from './journal-frame.js';
import { SyncCoalescer } from './sync-coalescer.js';

const SEGMENT_NAME = /^(\d{16})\.journal$/;
const DEFAULT_MAX_SEGMENT_BYTES = 16 * 1024 * 1024;
/**
 * Zeros written ahead of the batches (durably, as everything in a segment), so that a batch
 * lands on blocks already written and leaves the file's size as it is. On a journaling file
 * system (ext4, XFS) a durable write that grows a file also waits for a commit of the file
 * system's own journal: 0.49–0.77 ms per 11 KB write at the median on ext4, against 0.24–0.29
 * ms over written zeros (docs/benchmarks-record.md, section 1). A segment gets zeros from its second
 * batch on (a quiet daemon writes one batch per push, and no zeros), twice as many as it holds
 * so far, from 64 KiB to 1 MiB at a time, once less than half of the last stretch is left
 * ahead: on flash storage the zeros are writes too.
 */
const MOST_ZEROS = 1024 * 1024;
/** The least written at a time, and the buffer of zeros written that many times over (a MiB of zeros held would be ~1.5 MB more resident). */
const ZEROS_BYTES = 64 * 1024;
let zeros: Buffer[] | undefined;

export interface JournalOptions {
  /** A segment that has reached this size is closed before the next batch. */
  maxSegmentBytes?: number;
  /** Told the number of each segment this process closes: nothing more is written to it. */
  onClosed?: (segment: number) => void;
  /**
   * Writes a batch to the segment, which is open with O_DSYNC: the batch is on disk when the
   * write returns, as after an fdatasync. `handle.writev` unless a test watches the calls.
   */
  write?: (handle: FileHandle, frames: Buffer[]) => Promise<{ bytesWritten: number }>;
  /** Writes zeros ahead of the batches at `position` (see MOST_ZEROS), through a handle of its own. `handle.writev` unless a test watches the calls. */
  writeAhead?: (handle: FileHandle, zeros: Buffer[], position: number) => Promise<{ bytesWritten: number }>;
}

export interface Appended {
  /** The segment the entries went to, once they are in its file (a crash of the process no longer loses them). */
  written: Promise<number>;
  /** Once they are on disk: a crash or power loss no longer loses them. */
  durable: Promise<void>;
}

interface Batch {
  frames: Buffer[];
  written: { resolve(segment: number): void; reject(error: unknown): void };
}

// A new file (as 'wx'), whose writes return once their data is on disk.
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;

function writeFrames(handle: FileHandle, frames: Buffer[]): Promise<{ bytesWritten: number }> {
  return handle.writev(frames);
}

function writeZeros(handle: FileHandle, buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
  return handle.writev(buffers, position);
}

function segmentName(segment: number): string {
  return `${String(segment).padStart(16, '0')}.journal`;
}

/**
 * An append-only log in numbered segment files, with group commit: entries appended while a
 * batch is being written go out together in the next batch, with one write. Segments are
 * opened with O_DSYNC, so a write returns once its data is on disk: one system call (and one
 * trip through node's thread pool) per batch instead of a write and an fdatasync. A segment
 * is closed when it is large, when asked, or after a failed write (so that nothing follows a
 * frame a failure may have cut short).
 */
export class Journal {
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #options: JournalOptions;
  readonly #commit = new SyncCoalescer(() => this.#flush());
  #queue: Batch[] = [];
  #handle: FileHandle | undefined;
  #segment = 0;
  /** Bytes of batches in the segment: where the next one goes. */
  #size = 0;
  /** Bytes of the segment on disk, batches and the zeros written ahead of them. */
  #allocated = 0;
  /** Batches written to the segment. */
  #batches = 0;
  /** The zeros' own handle on the segment (see #writeAhead); closed once they fail in it. */
  #zerosHandle: FileHandle | undefined;
  #zerosFailed = false;
  /** Zeros being written from `#zeroingFrom` on, if any: a batch that would reach them waits. */
  #zeroing: Promise<void> | undefined;
  #zeroingFrom = Number.POSITIVE_INFINITY;
  /** The first segment of this process; unknown until the folder has been listed. */
  #first: number | undefined;
  #next = 0;
  #closeRequested = false;

  constructor(dir: string, options: JournalOptions = {}) {
    this.#dir = dir;
    this.#maxBytes = options.maxSegmentBytes ?? DEFAULT_MAX_SEGMENT_BYTES;
    this.#options = options;
  }

  append(entries: readonly JournalEntry[]): Appended {
    let written!: Batch['written'];
    const writtenPromise = new Promise<number>((resolve, reject) => (written = { resolve, reject }));
    writtenPromise.catch(() => undefined);
    this.#queue.push({ frames: entries.map(encodeEntry), written });
    return { written: writtenPromise, durable: this.#commit.request() };
  }

  /** Closes the segment being written (if any) once the batches before this call are out. */
  closeSegment(): Promise<void> {
    this.#closeRequested = true;
    return this.#commit.request();
  }

  /** Segments left by earlier processes, oldest first. */
  async earlierSegments(): Promise<number[]> {
    const names = await readdir(this.#dir).catch((error: unknown) => {
      if (isNotFound(error)) return [] as string[];
      throw error;
    });
    const segments = names.flatMap((name) => (SEGMENT_NAME.test(name) ? [Number(name.slice(0, 16))] : [])).sort((a, b) => a - b);
    return segments.filter((segment) => this.#first === undefined || segment < this.#first);
  }

  read(segment: number): Promise<Buffer> {
    return readFile(this.#file(segment));
  }

  /** Deletes closed segments whose changes are durable elsewhere. */
  async remove(segments: readonly number[]): Promise<void> {
    if (segments.length === 0) return;
    for (const segment of segments) await removeFile(this.#file(segment));
    await syncFolder(this.#dir).catch((error: unknown) => {
      if (!isNotFound(error)) throw error;
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#queue.splice(0);
    try {
      // Taken before the close is awaited: a request made meanwhile is for the next flush.
      const closeRequested = this.#closeRequested;
      this.#closeRequested = false;
      if (this.#handle && (closeRequested || this.#size >= this.#maxBytes)) await this.#close();
      if (batch.length === 0) return;
      const handle = this.#handle ?? (await this.#open());
      const frames = batch.flatMap((item) => item.frames);
      const total = frames.reduce((sum, frame) => sum + frame.length, 0);
      try {
        if (this.#size + total > this.#zeroingFrom) await this.#zeroing;
        const { bytesWritten } = await (this.#options.write ?? writeFrames)(handle, frames);
        if (bytesWritten !== total) throw new DeployhookError('JOURNAL_SHORT_WRITE', `Expected to append ${total} bytes to the journal, wrote ${bytesWritten}: is the disk full?`);
        this.#size += total;
        this.#batches += 1;
        this.#allocated = Math.max(this.#allocated, this.#size);
        for (const item of batch) item.written.resolve(this.#segment);
        this.#writeAhead();
      } catch (error) {
        // After a failed write the segment cannot be trusted to continue.
        await this.#close().catch(() => undefined);
        throw error;
      }
    } catch (error) {
      for (const item of batch) item.written.reject(error);
      throw error;
    }
  }

  /**
   * Writes zeros past the end of what the segment holds, in the background, when little is
   * left ahead of the batches (see MOST_ZEROS). They go through a handle of their own: the
   * kernel reports an error writing a file back once per open file, to the first sync that
   * looks, and a batch's write must see its own. A batch that would reach them waits for them.
   * Should they fail or fall short (a full disk), what they wrote is cut off and the segment
   * gets no more: its batches grow the file as before, and the zeros hold no space that the
   * deliveries' log, the run files or the logs need. Nothing reads zeros as entries: a frame's
   * length is at least 3.
   */
  #writeAhead(): void {
    if (this.#zeroing !== undefined || this.#zerosFailed || this.#batches < 2 || this.#size >= this.#maxBytes) return;
    // Never much past the size at which the segment is closed (and cut back to its entries).
    const room = this.#maxBytes - this.#allocated;
    const stretch = Math.min(MOST_ZEROS, Math.max(ZEROS_BYTES, Math.ceil((2 * this.#size) / ZEROS_BYTES) * ZEROS_BYTES), Math.ceil(room / ZEROS_BYTES) * ZEROS_BYTES);
    if (room <= 0 || this.#allocated - this.#size >= stretch / 2) return;
    const from = this.#allocated;
    this.#zeroingFrom = from;
    this.#zeroing = this.#writeZeros(stretch, from).finally(() => {
      this.#zeroing = undefined;
      this.#zeroingFrom = Number.POSITIVE_INFINITY;
    });
  }

  async #writeZeros(bytes: number, from: number): Promise<void> {
    zeros ??= new Array<Buffer>(MOST_ZEROS / ZEROS_BYTES).fill(Buffer.alloc(ZEROS_BYTES));
    try {
      this.#zerosHandle ??= await open(this.#file(this.#segment), constants.O_WRONLY | constants.O_DSYNC);
      const { bytesWritten } = await (this.#options.writeAhead ?? writeZeros)(this.#zerosHandle, zeros.slice(0, bytes / ZEROS_BYTES), from);
      if (bytesWritten !== bytes) throw new DeployhookError('JOURNAL_SHORT_WRITE', `Expected to write ${bytes} bytes of zeros ahead of the journal, wrote ${bytesWritten}`);
      this.#allocated = from + bytes;
    } catch {
      this.#zerosFailed = true;
      await this.#zerosHandle?.truncate(from).catch(() => undefined);
      await this.#zerosHandle?.close().catch(() => undefined);
      this.#zerosHandle = undefined;
    }
  }

  #file(segment: number): string {
    return join(this.#dir, segmentName(segment));
  }

  async #open(): Promise<FileHandle> {
    if (this.#first === undefined) {
      await makeFolderDurably(this.#dir);
      const earlier = await this.earlierSegments();
      this.#next = (earlier.at(-1) ?? 0) + 1;
      this.#first = this.#next;
    }
    const segment = this.#next++;
    const handle = await open(this.#file(segment), SEGMENT_FLAGS, 0o600);
    try {
      // The segment's name must be on disk before anything in it is acknowledged.
      await syncFolder(this.#dir);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    this.#handle = handle;
    this.#segment = segment;
    this.#size = 0;
    this.#allocated = 0;
    this.#batches = 0;
    this.#zerosFailed = false;
    return handle;
  }

  async #close(): Promise<void> {
    const handle = this.#handle;
    if (!handle) return;
    this.#handle = undefined;
    try {
      await this.#zeroing;
      await this.#zerosHandle?.close().catch(() => undefined);
      this.#zerosHandle = undefined;
      // The zeros ahead are of no use in a closed segment (delivery segments are kept for days).
      if (this.#allocated > this.#size) await handle.truncate(this.#size).catch(() => undefined);
      await handle.close();
    } finally {
      this.#options.onClosed?.(this.#segment);
    }
  }
}
