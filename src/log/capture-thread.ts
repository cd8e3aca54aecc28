import { Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { packageRoot } from '../package-root.js';
import { closeQuietly } from '../runner/output-pipes.js';
import type { PipeToTake } from '../runner/run-command.js';
import type { CappedOutput, CappedState } from './capped-output.js';
import { READING, STOP, type CaptureJob, type CaptureMessage } from './capture-protocol.js';
import { tagOutputChannel } from './mask-secrets.js';

/**
 * The capture thread's entry, `dist/capture-worker.js`: the thread always runs the built entry,
 * also when this code runs from `src/` in tests (`npm test` builds first).
 */
export const CAPTURE_WORKER = join(packageRoot(import.meta.url), 'dist', 'capture-worker.js');

/** Most capture threads at once, daemon-wide; past that, a chatty command is read on the event loop. */
const MOST_AT_ONCE = 8;

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

/** Capture threads in this process: started, done with the log back from them (for tests and the curious), and running now. */
export const captureThreads = { started: 0, completed: 0, running: 0 };

/**
 * Told when a capture thread could not be used: `start` (it did not start, and the event loop
 * read the output instead) or `failed` (it failed after it began, and that run's log is marked
 * as failed); once per kind, as the daemon's other helpers tell theirs.
 */
export const captureProblems: { onProblem: ((kind: 'start' | 'failed', reason: string) => void) | undefined } = { onProblem: undefined };
const toldOf = new Set<string>();

function tell(kind: 'start' | 'failed', reason: string): void {
  if (toldOf.has(kind)) return;
  toldOf.add(kind);
  captureProblems.onProblem?.(kind, reason);
}

/** Whether another capture thread may start now. */
export function canCaptureOnThread(): boolean {
  return captureThreads.running < MOST_AT_ONCE;
}

/** While the log is being lent and the thread starts, the daemon hears this often that output is on its way. */
const STARTING_ACTIVITY_MS = 100;
/** How long a thread told to stop may take to give the log back before it is terminated. */
const STOP_ANSWER_MS = 5_000;

/**
 * Captures a chatty command's output on a thread of its own, which reads the pipes, masks,
 * caps and writes with synchronous system calls: on the event loop, every 64 KiB read was a
 * callback and every write a trip through the thread pool, and 1 GB of output went through at
 * ~0.6× the speed of a redirect to a file (docs/benchmarks-record.md, section 4). The log is lent to
 * the thread (capped-output.ts) once what came before is on disk, and comes back when every
 * pipe has ended or the daemon stops reading them. Returns one stream per pipe, in place of the
 * pipe's own, that emits 'activity' while output comes, ends when the log is back, and stops
 * the reading when destroyed (the thread then reads what the pipes still hold, two reads each
 * at most). Check `canCaptureOnThread` first.
 *
 * The caller hands over descriptors it will not read or close again: after the thread is done
 * they are closed here. Should the thread fail (or not give the log back `STOP_ANSWER_MS`
 * after being told to stop), the log comes back marked as failed (or as it was, if the thread
 * never read) and the pipes are read on the event loop to their end.
 */
export function captureOnThread(options: CaptureOptions): Readable[] {
  captureThreads.running += 1;
  captureThreads.started += 1;
  const signals = new Int32Array(new SharedArrayBuffer(8));
  const stopped = new AbortController();
  // Flowing from the start (they carry no data), so that each ends and closes as soon as the log is back.
  const streams = options.pipes.map(() =>
    new Readable({
      read() {},
      destroy(error, callback) {
        Atomics.store(signals, STOP, 1);
        Atomics.notify(signals, STOP);
        stopped.abort();
        callback(error);
      },
    }).resume(),
  );
  void run(options, signals, streams, stopped.signal)
    .catch(() => streams.forEach((stream) => stream.push(null)))
    .finally(() => {
      captureThreads.running -= 1;
    });
  return streams;
}

/** What the thread gave back: the log's state (and whether its loop failed), or why the thread failed. */
type Outcome = { state: CappedState; failed: boolean } | Error;

/**
 * Runs the thread: `started` once it reads, `activity` when it says output came. One that has
 * not answered `STOP_ANSWER_MS` after being told to stop is terminated.
 */
function threadOutcome(entry: string, job: CaptureJob, started: () => void, activity: () => void, stopped: AbortSignal): Promise<Outcome> {
  let worker: Worker | undefined;
  let deadline: NodeJS.Timeout | undefined;
  const terminate = () => {
    deadline = setTimeout(() => void worker?.terminate(), STOP_ANSWER_MS).unref();
  };
  return new Promise<Outcome>((resolve) => {
    worker = new Worker(entry, { workerData: job });
    worker.on('message', (message: CaptureMessage) => {
      if (message.type === 'reading') started();
      else if (message.type === 'active') activity();
      else resolve({ state: message.state, failed: message.failed === true });
    });
    worker.on('error', (error: Error) => resolve(error));
    worker.on('exit', (code) => resolve(new Error(`it exited with code ${String(code)}`)));
    if (stopped.aborted) terminate();
    else stopped.addEventListener('abort', terminate, { once: true });
  }).finally(() => {
    clearTimeout(deadline);
    stopped.removeEventListener('abort', terminate);
  });
}

async function run(options: CaptureOptions, signals: Int32Array, streams: Readable[], stopped: AbortSignal): Promise<void> {
  const { capped, pipes } = options;
  const ended = () => streams.forEach((stream) => stream.push(null));
  const activity = () => streams.forEach((stream) => stream.emit('activity'));
  // Until the thread reads, the output waits for the lend and the thread's start: that is not a quiet pipe.
  const starting = setInterval(activity, STARTING_ACTIVITY_MS);
  let lent: CappedState | undefined;
  let outcome: Outcome;
  try {
    lent = await capped.lend();
    const job: CaptureJob = { pipes: [...pipes], logFd: options.logFd, logPath: options.logPath, maxBytes: options.maxBytes, secrets: [...options.secrets], state: lent, signals: signals.buffer as SharedArrayBuffer };
    outcome = await threadOutcome(options.entry ?? CAPTURE_WORKER, job, () => clearInterval(starting), activity, stopped);
  } catch (error) {
    outcome = error instanceof Error ? error : new Error(String(error));
  } finally {
    clearInterval(starting);
  }
  if (!(outcome instanceof Error) && !outcome.failed) {
    capped.resume(outcome.state);
    captureThreads.completed += 1;
    for (const { fd } of pipes) closeQuietly(fd);
    ended();
    return;
  }
  // The thread failed. Its loop failed: the log comes back with the failure. The thread itself
  // failed: what it wrote is unknown once it began to read (it says so in shared memory, which no
  // message can overtake), so the log is marked as failed (and what follows is discarded). Either
  // way the pipes are read to their end, so the command is never left blocked on a full pipe.
  const reading = Atomics.load(signals, READING) === 1;
  if (!(outcome instanceof Error)) capped.resume(outcome.state);
  else if (lent) capped.resume(reading ? { ...lent, failure: `the thread that captured the command's output failed: ${outcome.message}` } : lent);
  if (outcome instanceof Error) tell(reading ? 'failed' : 'start', outcome.message);
  else tell('failed', outcome.state.failure ?? 'its loop failed');
  const sockets = pipes.flatMap(({ fd, channel }, index) => {
    let socket: Socket;
    try {
      socket = new Socket({ fd, readable: true, writable: false }).on('error', () => undefined);
    } catch {
      closeQuietly(fd);
      return [];
    }
    tagOutputChannel(socket, channel);
    socket.on('data', () => streams[index]?.emit('activity'));
    if (stopped.aborted) socket.destroy();
    else socket.pipe(capped.input, { end: false });
    streams[index]?.once('close', () => socket.destroy());
    return [socket];
  });
  await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve))));
  ended();
}
