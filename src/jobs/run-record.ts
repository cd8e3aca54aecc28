import type { ProviderName } from '../config/types.js';

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted', 'skipped'] as const;
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
  /** The commit the trigger asked for; empty for an event run of a job without a remote. */
  sha: string;
  /** Deploy exactly `sha` (an operator's rollback) instead of converging on the branch tip. */
  exact?: boolean;
  before: string;
  /** Set for a generic event run: the source in `/hooks/generic/<source>`. Repo, ref and before are empty then. */
  source?: string;
  /** The commit actually checked out, once git has run (also for a skipped run, which deployed nothing). */
  deployedSha?: string;
  queuedAt: string;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  exitCode?: number | null;
  signal?: string | null;
  /** Why the run failed, was cancelled, superseded or skipped, in one sentence. */
  reason?: string;
  supersededBy?: string;
  /** Deliveries of the same commit that joined the run while it waited, besides the one in `trigger`. */
  joined?: number;
  /** Set on an interrupted run once recovery has queued a new run for it. */
  retriedBy?: string;
  /** The process group of the run's git steps, then of its command, then of git's housekeeping after it, so that a restart can stop leftovers. */
  pgid?: number;
  pgidStartTime?: string;
  /** The boot the group belongs to (/proc/sys/kernel/random/boot_id): recovery leaves another boot's group alone. */
  pgidBootId?: string;
  /**
   * Set with `pgid` once it names the command's group. A `running` record without it may have
   * a command that started before its group could be saved: recovery looks for its processes
   * by their DEPLOYHOOK_RUN_ID.
   */
  commandGroup?: true;
  /** Set while git's housekeeping after the run works in the group `pgid` names; removed, with the group, once it ends. */
  housekeeping?: true;
  logPath: string;
  eventFile: string;
  /** Fan-out: what became of relaying the delivery that queued this run. */
  forwards?: ForwardRecord[];
}

/** One fan-out destination of a delivery, as the run record shows it. */
export interface ForwardRecord {
  /** The destination URL without user, password or query. */
  url: string;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  /** The HTTP status of the last attempt, when there was an answer. */
  lastStatus?: number;
  /** Why the last attempt failed, in one sentence. */
  lastError?: string;
  /** When it was delivered or given up. */
  finishedAt?: string;
}

export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted', 'skipped']);

/** Once git's housekeeping after the run has ended: the record names no group of it for a later start to stop. */
export function forgetHousekeeping(record: RunRecord): void {
  delete record.housekeeping;
  delete record.pgid;
  delete record.pgidStartTime;
  delete record.pgidBootId;
  delete record.commandGroup;
}
