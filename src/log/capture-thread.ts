import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../package-root.js';
import type { PipeToTake } from '../runner/run-command.js';
import type { CappedOutput, CappedState } from './capped-output.js';
import { tagOutputChannel } from './mask-secrets.js';

/**
 * The capture thread's entry, `dist/capture-worker.js`: the thread always runs the built entry,
 * also when this code runs from `src/` in tests (`npm test` builds first).
 */
export const CAPTURE_WORKER = join(packageRoot(import.meta.url), 'dist', 'capture-worker.js');

/** Most capture threads at once, daemon-wide; past that, a chatty command is read on the event loop. */
const MOST_AT_ONCE = 8;


/** What the thread is given. */
export interface CaptureJob {
  pipes: PipeToTake[];
  /** The run log's descriptor, open for appending. */
  logFd: number;
  logPath: string;
  maxBytes: number;
  secrets: string[];
  state: CappedState;
  /** One Int32: set to 1 (and notified) when the thread is to stop reading. */
  stop: SharedArrayBuffer;
}

export type CaptureMessage = { type: 'reading' } | { type: 'active' } | { type: 'done'; state: CappedState };

export interface CaptureOptions {
  capped: CappedOutput;
  logFd: number;
  logPath: string;
  maxBytes: number;
  secrets: readonly string[];
  pipes: readonly PipeToTake[];
  /** The thread's script (the built one unless a test says otherwise). */
  entry?: string | undefined;
}

/** How many capture threads have started in this process (for tests and the curious), and how many run now. */
export const captureThreads = { started: 0, running: 0 };

/** Whether another capture thread may start now. */
export function canCaptureOnThread(): boolean {
  return captureThreads.running < MOST_AT_ONCE;
}

/**
 * Captures a chatty command's output on a thread of its own, which reads the pipes, masks,
 * caps and writes with synchronous system calls: on the event loop, every 64 KiB read was a
 * callback and every write a trip through the thread pool, and 1 GB of output went through at
 * ~0.6× the speed of a redirect to a file (docs/benchmarks.md, section 4). The log is lent to
 * the thread (capped-output.ts) once what came before is on disk, and comes back when every
 * pipe has ended or the daemon stops reading them. Returns one stream per pipe, in place of the
 * pipe's own, that emits 'activity' while output comes, ends when the log is back, and stops
 * the reading when destroyed. Check `canCaptureOnThread` first.
 *
 * The caller hands over descriptors it will not read or close again: after the thread is done
 * they are closed here. Should the thread fail, the log comes back marked as failed (or as it
 * was, if the thread never read) and the pipes are read on the event loop to their end.
 */
export function captureOnThread(options: CaptureOptions): Readable[] {
  captureThreads.running += 1;
  captureThreads.started += 1;
  const stop = new SharedArrayBuffer(4);
  const flag = new Int32Array(stop);
  let stopped = false;
  const requestStop = () => {
    stopped = true;
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  };
  // Flowing from the start (they carry no data), so that each ends and closes as soon as the log is back.
  const streams = options.pipes.map(() =>
    new Readable({
      read() {},
      destroy(error, callback) {
        requestStop();
        callback(error);
      },
    }).resume(),
  );
  void run(options, stop, () => stopped, streams).finally(() => {
    captureThreads.running -= 1;
  });
  return streams;
}

async function run(options: CaptureOptions, stop: SharedArrayBuffer, stopped: () => boolean, streams: Readable[]): Promise<void> {
  const { capped, pipes } = options;
  const lentState = await options.capped.lend();
  const ended = () => streams.forEach((stream) => stream.push(null));
  const job: CaptureJob = { pipes: [...pipes], logFd: options.logFd, logPath: options.logPath, maxBytes: options.maxBytes, secrets: [...options.secrets], state: lentState, stop };
  let reading = false;
  const outcome = await new Promise<CappedState | Error>((resolve) => {
    let worker: Worker;
    try {
      worker = new Worker(options.entry ?? CAPTURE_WORKER, { workerData: job });
    } catch (error) {
      resolve(error as Error);
      return;
    }
    worker.on('message', (message: CaptureMessage) => {
      if (message.type === 'reading') reading = true;
      else if (message.type === 'active') streams.forEach((stream) => stream.emit('activity'));
      else resolve(message.state);
    });
    worker.on('error', (error: Error) => resolve(error));
    worker.on('exit', (code) => resolve(new Error(`it exited with code ${String(code)}`)));
  });
  if (!(outcome instanceof Error)) {
    capped.resume(outcome);
    for (const { fd } of pipes) closeQuietly(fd);
    ended();
    return;
  }
  // The thread failed: what it wrote is unknown once it read, so the log is marked as failed
  // (and what follows is discarded); the pipes are read to their end, so the command is never
  // left blocked on a full pipe.
  capped.resume(reading ? { ...lentState, failure: `the thread that captured the command's output failed: ${outcome.message}` } : lentState);
  const sockets = pipes.map(({ fd, channel }, index) => {
    const socket = new Socket({ fd, readable: true, writable: false }).on('error', () => undefined);
    tagOutputChannel(socket, channel);
    socket.on('data', () => streams[index]?.emit('activity'));
    if (stopped()) socket.destroy();
    else socket.pipe(capped.input, { end: false });
    streams[index]?.once('close', () => socket.destroy());
    return socket;
  });
  await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
  ended();
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}
