import { hostname, userInfo } from 'node:os';
import { formatDuration } from '../config/duration.js';
import type { RunRecord } from '../jobs/run-record.js';
import type { ApiClient } from './api-client.js';
import { age, formatTable, short } from './table.js';

interface JobView {
  name: string;
  repo: string;
  /** A generic job's event source; null for a Git host's job. */
  source?: string | null;
  state: string;
  lastRun: RunRecord | null;
  deployedSha: string | null;
  deployedAt: string | null;
}

type Print = (text: string) => void;

/** The branch or tag a run deploys; for an event run, where the event came from. */
function target(run: RunRecord): string {
  const ref = run.ref.replace(/^refs\/heads\//, '');
  if (run.source === undefined) return ref;
  return ref ? `${ref}, event from ${run.source}` : `event from ${run.source}`;
}

function duration(run: RunRecord): string {
  if (run.durationMs !== undefined) return formatDuration(run.durationMs);
  if (run.startedAt && run.status === 'running') return `${formatDuration(Date.now() - Date.parse(run.startedAt))}…`;
  return '-';
}

export async function listJobs(client: ApiClient, print: Print): Promise<void> {
  const { jobs } = await client.get<{ jobs: JobView[] }>('/api/jobs');
  const rows = jobs.map((job) => [job.name, job.state, job.source ? `events from ${job.source}` : job.repo, job.lastRun ? `${job.lastRun.status} ${age(job.lastRun.queuedAt)}` : '-', short(job.deployedSha), age(job.deployedAt)]);
  print(formatTable(['JOB', 'STATE', 'REPO', 'LAST RUN', 'DEPLOYED', 'SINCE'], rows));
}

export async function listRuns(client: ApiClient, filter: { job?: string | undefined; status?: string | undefined; limit?: string | undefined }, print: Print): Promise<void> {
  const query = new URLSearchParams(Object.entries(filter).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const { runs } = await client.get<{ runs: RunRecord[] }>(`/api/runs?${query.toString()}`);
  const rows = runs.map((run) => [run.id, run.job, run.status, run.trigger.type, target(run), short(run.sha), short(run.deployedSha), age(run.queuedAt), duration(run)]);
  print(formatTable(['RUN', 'JOB', 'STATUS', 'TRIGGER', 'REF', 'COMMIT', 'DEPLOYED', 'QUEUED', 'DURATION'], rows));
}

/**
 * Prints a run's log; with `follow`, until the run ends. A run without a log (it never
 * started: superseded, cancelled while queued) gets one line on `note` instead, saying why.
 * Resolves with the run's status at the end.
 */
export async function showLog(client: ApiClient, runId: string, follow: boolean, write: (chunk: Uint8Array) => void, note: Print): Promise<string> {
  let printed = 0;
  for await (const chunk of client.stream(`/api/runs/${encodeURIComponent(runId)}/log${follow ? '?follow=1' : ''}`)) {
    printed += chunk.length;
    write(chunk);
  }
  const { run } = await client.get<{ run: RunRecord }>(`/api/runs/${encodeURIComponent(runId)}`);
  if (printed === 0) note(`run ${run.id} of job ${run.job} is ${run.status} and has no output${run.reason !== undefined ? `: ${run.reason}` : ''}`);
  return run.status;
}

export async function deploy(client: ApiClient, job: string, target: { ref?: string | undefined; sha?: string | undefined }, print: Print): Promise<string> {
  const requestedBy = `${userInfo().username}@${hostname()}`;
  const body = { ...(target.ref !== undefined ? { ref: target.ref } : {}), ...(target.sha !== undefined ? { sha: target.sha } : {}), requested_by: requestedBy };
  const { run } = await client.post<{ run: { id: string; job: string; sha: string; ref: string; exact: boolean } }>(`/api/jobs/${encodeURIComponent(job)}/deploy`, body);
  print(`queued run ${run.id} of job ${run.job}: ${run.exact ? `exactly ${run.sha}` : `the tip of ${run.ref} (now ${short(run.sha)})`}`);
  return run.id;
}

export async function cancel(client: ApiClient, runId: string, print: Print): Promise<void> {
  const { run } = await client.post<{ run: { id: string; job: string; status: string } }>(`/api/runs/${encodeURIComponent(runId)}/cancel`, {});
  print(`cancelling run ${run.id} of job ${run.job} (it was ${run.status})`);
}
