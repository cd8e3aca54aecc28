import { FINAL_STATUSES, type RunRecord, type RunTrigger } from '../jobs/run-record.js';

// The page script (script.ts) formats the same way when it refreshes the page: keep them alike.

export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 7) : '';
}

export { formatAge } from '../config/duration.js';

/** `850 ms`, `4.2 s`, `3m 04s`, `1h 02m`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes}m ${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, '0')}m`;
}

/** `2025-01-02 12:03:04 UTC`: the server does not know the reader's time zone. */
export function formatTime(iso: string | null | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC') : '';
}

/** How long a run took, or has been running so far. */
export function runDuration(run: RunRecord, now: number): string {
  if (run.durationMs !== undefined) return formatDuration(run.durationMs);
  if (run.startedAt && !FINAL_STATUSES.has(run.status)) return formatDuration(now - Date.parse(run.startedAt));
  return '';
}

/** The branch or tag; for an event run, where the event came from (and the branch it deploys, if any). */
export function refName(run: RunRecord): string {
  const ref = run.branch ?? run.ref.replace(/^refs\/(heads|tags)\//, '');
  if (run.source === undefined) return ref;
  return ref ? `${ref}, event from ${run.source}` : `event from ${run.source}`;
}

/** What a job deploys from: its repository, or a generic job's event source. */
export function jobOrigin(job: { repo: string; source?: string | null }): string {
  return job.source ? `events from ${job.source}` : job.repo;
}

export function triggerText(trigger: RunTrigger): string {
  return trigger.pusher ? `${trigger.type} by ${trigger.pusher}` : trigger.type;
}

export function exitText(run: RunRecord): string {
  if (run.exitCode !== undefined && run.exitCode !== null) return `exit code ${run.exitCode}`;
  if (run.signal) return `signal ${run.signal}`;
  return '';
}

/** The run page's fields that change while a run goes on; the script updates them by name. */
export function liveFields(run: RunRecord, now: number): Record<string, string> {
  return {
    deployedSha: run.deployedSha ?? '—',
    startedAt: formatTime(run.startedAt) || '—',
    finishedAt: formatTime(run.finishedAt) || '—',
    duration: runDuration(run, now) || '—',
    exit: exitText(run) || '—',
    reason: run.reason ?? '—',
  };
}
