import { FINAL_STATUSES, type RunRecord, type RunTrigger } from '../jobs/run-record.js';

// The page script (script.ts) formats the same way when it refreshes the page: keep them alike.

export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 7) : '';
}

/** `12s ago`, `5m ago`, `3h ago`, `2d ago`. */
export function formatAge(iso: string | null | undefined, now: number): string {
  const then = iso ? Date.parse(iso) : Number.NaN;
  if (Number.isNaN(then)) return '';
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)}h ago`;
  return `${Math.floor(seconds / 86_400)}d ago`;
}

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

export function refName(run: RunRecord): string {
  return run.branch ?? run.ref.replace(/^refs\/(heads|tags)\//, '');
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
