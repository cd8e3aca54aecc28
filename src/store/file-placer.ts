import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DeployhookError } from '../errors.js';
import { packageRoot } from '../package-root.js';
import type { Placement, PlacementFailure } from './place-files.js';

/**
 * The placing thread's entry, `dist/place-worker.js`: the thread always runs the built entry,
 * also when this code runs from `src/` in tests (`npm test` builds first).
 */
export const PLACE_WORKER = join(packageRoot(import.meta.url), 'dist', 'place-worker.js');

interface Waiting {
  resolve(failures: Array<Error | undefined>): void;
  reject(error: Error): void;
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
 * (docs/benchmarks-record.md). The thread starts on first use and does not keep the process alive
 * while it has nothing to do; if it fails, every batch it held is rejected and the next batch
 * starts a new one.
 */
export class FilePlacer {
  readonly #entry: string;
  #worker: Worker | undefined;
  #nextId = 0;
  readonly #waiting = new Map<number, Waiting>();

  /** `entry`: the thread's script (the built one unless a test says otherwise). */
  constructor(entry: string = PLACE_WORKER) {
    this.#entry = entry;
  }

  /** Makes the placements in order; resolves with one failure (or undefined) per placement. */
  place(placements: readonly Placement[]): Promise<Array<Error | undefined>> {
    if (placements.length === 0) return Promise.resolve([]);
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

  /** Forgets a batch that has its answer; an idle thread no longer keeps the process alive. */
  #settled(worker: Worker, id: number): void {
    this.#waiting.delete(id);
    if (this.#waiting.size === 0) worker.unref();
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
    worker.on('exit', (code: number) => fail(new DeployhookError('PLACER_EXITED', `The thread that puts files in place exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

/** One placing thread for every store of the process. */
export const filePlacer = new FilePlacer();
