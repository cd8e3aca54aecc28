import type { PipeToTake } from '../runner/run-command.js';
import type { CappedState } from './capped-output.js';

/** What the capture thread is given (capture-thread.ts, capture-worker.ts). */
export interface CaptureJob {
  pipes: PipeToTake[];
  /** The run log's descriptor, open for appending. */
  logFd: number;
  logPath: string;
  maxBytes: number;
  secrets: string[];
  state: CappedState;
  /** Int32s shared with the daemon: `STOP` and `READING`. */
  signals: SharedArrayBuffer;
}

/** Set to 1 (and notified) by the daemon when the thread is to stop reading. */
export const STOP = 0;
/** Set to 1 by the thread before its first read: from then on, what it wrote is unknown to the daemon. */
export const READING = 1;

/** `done` with `failed`: the thread's loop failed (the state says why); the daemon reads what is left of the pipes. */
export type CaptureMessage = { type: 'reading' } | { type: 'active' } | { type: 'done'; state: CappedState; failed?: boolean };
