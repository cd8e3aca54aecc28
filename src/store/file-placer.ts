import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DeployhookError } from '../errors.js';
import { packageRoot } from '../package-root.js';
import { placeAllSync, type Placement, type PlacementFailure } from './place-files.js';

/**
 * The placing thread's entry, `dist/place-worker.js`: the thread always runs the built entry,
 * also when this code runs from `src/` in tests (`npm test` builds first).
 */
export const PLACE_WORKER = join(packageRoot(import.meta.url), 'dist', 'place-worker.js');

interface Waiting {
  resolve(failures: Array<Error | undefined>): void;
  reject(error: Error): void;
}

/**
 * How long the placing thread may have nothing to do before it ends. A thread is a V8 isolate of
 * its own (a process grew by 10.8 MB with one, and gave 7.9 MB back when it ended), and a new
 * one answers its first batch only 50–65 ms after it is asked for (measured on a 2-core host).
 */
export const PLACER_IDLE_MS = 5_000;

/**
 * The most files, and bytes, a batch may have to be put in place on the calling thread when no
 * placing thread runs: a small file is four system calls (open, write, close, rename), 0.2–0.5
 * ms at the median on a 2-core host's ext4, where a thread started for them would answer 50–65
 * ms later. A daemon between floods (a push now and then, a run's record and payload) never
 * starts the thread at all; a flood's batches, and large payloads, go to it.
 */
export const PLACE_INLINE_MAX = 8;
export const PLACE_INLINE_MAX_BYTES = 256 * 1024;

export interface FilePlacerOptions {
  /** The thread's script (the built one unless a test says otherwise). */
  entry?: string;
  /** How long the thread may have nothing to do before it ends (PLACER_IDLE_MS). */
  idleMs?: number;
  /** The most files of a batch placed on the calling thread when no thread runs (PLACE_INLINE_MAX). */
  inlineMax?: number;
}

/** The bytes a batch writes, up to `limit` and one more: enough to tell whether it is over. */
function bytesUpTo(placements: readonly Placement[], limit: number): number {
  let bytes = 0;
  for (const { data } of placements) {
    bytes += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (bytes > limit) return limit + 1;
  }
  return bytes;
}

/** A file system error from the placing thread, with the file system's code (ENOENT, ENOSPC, ...). */
function toError(failure: PlacementFailure): Error {
  return new DeployhookError(failure.code ?? 'PLACE_FAILED', failure.message);
}

/**
 * Puts files in place on a thread of their own, with synchronous system calls, in batches.
 * Done on the main thread through node's promise API, each file took four round trips through
 * the thread pool (open, write, close, rename), and each round trip ~35 µs of the event loop:
 * with three files per acknowledged push that was the largest single cost of acknowledging one
 * (docs/benchmarks-record.md). The thread starts with the first batch larger than `inlineMax`
 * (a smaller one while no thread runs is put in place at once on the calling thread, see
 * PLACE_INLINE_MAX), does not keep the process alive while it has nothing to do, and ends once
 * it has had nothing to do for `idleMs`. If it fails, every batch it held is rejected. Either
 * way the next such batch starts a new one.
 */
export class FilePlacer {
  readonly #entry: string;
  readonly #inlineMax: number;
  #worker: Worker | undefined;
  /**
   * Threads started and not yet exited, the current one and any that failed or ended: until one
   * has exited it may still be writing, so no batch is put in place beside it.
   */
  #alive = 0;
  #nextId = 0;
  readonly #waiting = new Map<number, Waiting>();
  readonly #idleMs: number;
  /** When the last batch was answered (performance.now()), while no other is waiting. */
  #idleSince = 0;
  /** The check that ends an idle thread; one at a time, moved on rather than set per batch. */
  #idleCheck: NodeJS.Timeout | undefined;

  constructor(options: FilePlacerOptions = {}) {
    this.#entry = options.entry ?? PLACE_WORKER;
    this.#idleMs = options.idleMs ?? PLACER_IDLE_MS;
    this.#inlineMax = options.inlineMax ?? PLACE_INLINE_MAX;
  }

  /** Makes the placements in order; resolves with one failure (or undefined) per placement. */
  place(placements: readonly Placement[]): Promise<Array<Error | undefined>> {
    if (placements.length === 0) return Promise.resolve([]);
    // No thread, so no batch of its still to come: this one cannot overtake another.
    if (this.#alive === 0 && placements.length <= this.#inlineMax && bytesUpTo(placements, PLACE_INLINE_MAX_BYTES) <= PLACE_INLINE_MAX_BYTES) {
      return Promise.resolve(placeAllSync(placements).map((failure) => (failure === undefined ? undefined : toError(failure))));
    }
    const worker = this.#start();
    const id = ++this.#nextId;
    // Each content is copied once and moved to the thread: a Buffer is often a view into a
    // larger one (a journal segment, node's pool), which would otherwise be copied whole.
    const transfer: ArrayBuffer[] = [];
    const message = placements.map(({ file, op, data }): Placement => {
      if (typeof data === 'string') return { file, op, data };
      const copy = new Uint8Array(data);
      transfer.push(copy.buffer);
      return { file, op, data: copy };
    });
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      if (this.#waiting.size === 1) worker.ref();
      try {
        worker.postMessage({ id, placements: message }, transfer);
      } catch (error) {
        this.#settled(worker, id);
        reject(error as Error);
      }
    });
  }

  /**
   * Forgets a batch that has its answer; an idle thread no longer keeps the process alive, and
   * ends after `idleMs` more without a batch.
   */
  #settled(worker: Worker, id: number): void {
    this.#waiting.delete(id);
    if (this.#waiting.size > 0) return;
    worker.unref();
    this.#idleSince = performance.now();
    this.#checkIdleIn(this.#idleMs);
  }

  #checkIdleIn(ms: number): void {
    if (this.#idleCheck !== undefined) return;
    this.#idleCheck = setTimeout(() => {
      this.#idleCheck = undefined;
      const worker = this.#worker;
      // Busy again: the batch's answer checks again.
      if (worker === undefined || this.#waiting.size > 0) return;
      const left = this.#idleSince + this.#idleMs - performance.now();
      if (left > 0) {
        this.#checkIdleIn(left);
        return;
      }
      // Forgotten first, so that its exit is not taken for a failure (see #start).
      this.#worker = undefined;
      void worker.terminate();
    }, ms);
    this.#idleCheck.unref();
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(this.#entry);
    worker.unref();
    worker.on('message', ({ id, failures }: { id: number; failures: Array<PlacementFailure | null> }) => {
      const waiting = this.#waiting.get(id);
      if (!waiting) return;
      this.#settled(worker, id);
      waiting.resolve(failures.map((failure) => (failure === null ? undefined : toError(failure))));
    });
    const fail = (error: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      const waiting = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const batch of waiting) batch.reject(error);
      void worker.terminate();
    };
    worker.on('error', (error: Error) => fail(new DeployhookError('PLACER_FAILED', `The thread that puts files in place failed: ${error.message}`, { cause: error })));
    worker.on('messageerror', (error: Error) => fail(new DeployhookError('PLACER_FAILED', `An answer of the thread that puts files in place could not be read: ${error.message}`, { cause: error })));
    worker.on('exit', (code: number) => {
      this.#alive -= 1;
      fail(new DeployhookError('PLACER_EXITED', `The thread that puts files in place exited with code ${code}`));
    });
    this.#alive += 1;
    this.#worker = worker;
    return worker;
  }
}

/** One placing thread for every store of the process. */
export const filePlacer = new FilePlacer();
