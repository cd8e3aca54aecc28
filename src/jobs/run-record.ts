import type { ProviderName } from '../config/types.js';

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** What asked for a run. */
export interface WebhookTrigger {
  type: 'webhook';
  provider: ProviderName;
  delivery: string;
  pusher: string;
}

/** One run of one job: the record the API, metrics and the run log header are built from. */
export interface RunRecord {
  id: string;
  job: string;
  status: RunStatus;
  trigger: WebhookTrigger;
  repo: string;
  ref: string;
  branch?: string;
  /** The commit the trigger asked for. */
  sha: string;
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
  logPath: string;
  eventFile: string;
}

export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted']);
