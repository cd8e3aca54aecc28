import type { ProviderName } from '../config/types.js';

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** What asked for a run: a webhook, an operator, or recovery re-running a run the daemon could not finish. */
export interface RunTrigger {
  type: 'webhook' | 'manual' | 'recovery';
  provider: ProviderName;
  delivery: string;
  pusher: string;
  /** For recovery: the interrupted run this one repeats. */
  retryOf?: string;
  /** For a manual deploy: who asked, as the API client said. */
  requestedBy?: string;
}

/** One run of one job: the record the API, metrics and the run log header are built from. */
export interface RunRecord {
  id: string;
  job: string;
  status: RunStatus;
  trigger: RunTrigger;
  repo: string;
  ref: string;
  branch?: string;
  tag?: string;
  /** The commit the trigger asked for. */
  sha: string;
  /** Deploy exactly `sha` (an operator's rollback) instead of converging on the branch tip. */
  exact?: boolean;
  before: string;
  /** The commit actually checked out, once git has run. */
  deployedSha?: string;
  queuedAt: string;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  exitCode?: number | null;
  signal?: string | null;
  /** Why the run failed, was cancelled or superseded, in one sentence. */
  reason?: string;
  supersededBy?: string;
  /** Set on an interrupted run once recovery has queued a new run for it. */
  retriedBy?: string;
  /** The command's process group while it runs, so that a restart can stop leftovers. */
  pgid?: number;
  pgidStartTime?: string;
  logPath: string;
  eventFile: string;
}

export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted']);
