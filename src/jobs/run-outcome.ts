import { formatDuration } from '../config/duration.js';
import type { JobConfig } from '../config/types.js';
import type { RunLog } from '../log/run-log.js';
import type { RunStop } from './run-queue.js';
import type { RunRecord, RunStatus } from './run-record.js';

/** How a run ended, before it is written into the record. */
export interface Outcome {
  status: RunStatus;
  exitCode?: number | null;
  signal?: string | null;
  reason?: string;
}

/** How a stopped run is recorded: cancelled by an operator, or interrupted by a shutdown (and repeated). */
export function stoppedOutcome(stop: RunStop, during: string): Outcome {
  if (stop.cancelled()) return { status: 'cancelled', reason: `the run was cancelled ${during}` };
  return { status: 'interrupted', reason: `the daemon shut down ${during}; the run is repeated after restart` };
}

/** What each step of a run works with. */
export interface DeployContext {
  run: RunRecord;
  job: JobConfig;
  log: RunLog;
  stop: RunStop;
  baseEnv: Readonly<Record<string, string>>;
  persist: () => void;
  /**
   * Keeps the process group the run has going (git's steps, then the command: `command`) in
   * its record, so that recovery after a crash stops what is left of it before repeating the run.
   */
  keepGroup: (pgid: number, command?: boolean) => void;
  /** The save of the `running` record: git works meanwhile, the command starts only after it. */
  recorded: Promise<void>;
  /** What the job's newest succeeded run deployed: the `paths` filter compares with it. */
  lastDeployed: string | undefined;
}

/** How a run stopped while git was running is recorded. */
export function stoppedInGit(stop: RunStop, job: JobConfig): Outcome {
  return stop.signal.aborted ? stoppedOutcome(stop, 'while git was running') : { status: 'timed_out', reason: `the run exceeded its timeout of ${formatDuration(job.timeoutMs)} while git was running` };
}
