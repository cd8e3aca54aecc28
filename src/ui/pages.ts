import type { RunRecord } from '../jobs/run-record.js';
import { formatAge, formatTime, jobOrigin, liveFields, refName, runDuration, shortSha, triggerText } from './format.js';
import { html, type Html } from './html.js';

/** A job as the status page shows it: the same fields as in `GET /api/jobs`. */
export interface JobSummary {
  name: string;
  repo: string;
  /** A generic job's event source; null for a Git host's job. */
  source?: string | null;
  branches: readonly string[];
  state: 'idle' | 'running' | 'queued';
  /** Ids of the job's running and waiting runs. */
  running: string | null;
  queued: string | null;
  lastRun: RunRecord | null;
  deployedSha: string | null;
  deployedAt: string | null;
}

type PageData = { page: 'index' } | { page: 'run'; runId: string } | { page: 'missing' };

/**
 * Every URL in the pages and their script is relative to the page's `<base>`, the status
 * page's root: so the page also works behind a reverse proxy that serves it under a path of
 * its own (`https://ops.example/deployhook/` → the daemon's `/`).
 */
function layout(title: string, data: PageData, main: Html): string {
  const runId = data.page === 'run' ? html` data-run-id="${data.runId}"` : '';
  // The index is the root itself; every other page is one folder down (/runs/<id>).
  const root = data.page === 'index' ? './' : '../';
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · deployhook</title>
<base href="${root}">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="assets/deployhook.css">
<script src="assets/deployhook.js" defer></script>
</head>
<body data-page="${data.page}"${runId}>
<header class="top"><a class="brand" href="./">deployhook</a></header>
<main>
${main}
</main>
</body>
</html>
`.toString();
}

const runHref = (id: string) => `runs/${encodeURIComponent(id)}`;

export function badge(status: string, title?: string): Html {
  return html`<span class="badge badge-${status}"${title ? html` title="${title}"` : ''}>${status.replace('_', ' ')}</span>`;
}

function age(iso: string | null | undefined, now: number): Html {
  return iso ? html`<time datetime="${iso}" title="${formatTime(iso)}">${formatAge(iso, now)}</time>` : html``;
}

function jobRow(job: JobSummary, now: number): Html {
  // The newest run, unless it is the one the state badge already stands for.
  const { lastRun } = job;
  const last = lastRun && lastRun.id !== job.running && lastRun.id !== job.queued ? html` <span class="muted">last</span> <a href="${runHref(lastRun.id)}">${badge(lastRun.status, 'last run')}</a>` : '';
  const deployed = job.deployedSha ? html`<code>${shortSha(job.deployedSha)}</code> ${age(job.deployedAt, now)}` : '—';
  return html`<tr><td class="strong">${job.name}</td><td>${badge(job.state)}${last}</td><td>${deployed}</td><td>${jobOrigin(job)}</td><td>${job.branches.join(', ')}</td></tr>`;
}

function runRow(run: RunRecord, now: number): Html {
  return html`<tr><td>${badge(run.status)}</td><td><a href="${runHref(run.id)}"><code>${run.id}</code></a></td><td>${run.job}</td><td>${triggerText(run.trigger)}</td><td>${refName(run)}</td><td><code>${shortSha(run.deployedSha ?? run.sha)}</code></td><td>${runDuration(run, now)}</td><td>${age(run.queuedAt, now)}</td></tr>`;
}

function emptyRow(columns: number, text: string): Html {
  return html`<tr class="empty"><td colspan="${columns}">${text}</td></tr>`;
}

export function indexPage(jobs: readonly JobSummary[], runs: readonly RunRecord[], now: number): string {
  return layout(
    'Status',
    { page: 'index' },
    html`<p id="notice" class="notice" hidden></p>
<h1>Jobs</h1>
<div class="scroll"><table>
<thead><tr><th>Job</th><th>Status</th><th>Deployed</th><th>Repository</th><th>Branches</th></tr></thead>
<tbody id="jobs">${jobs.length > 0 ? jobs.map((job) => jobRow(job, now)) : emptyRow(5, 'No jobs configured.')}</tbody>
</table></div>
<h2>Recent runs</h2>
<div class="scroll"><table>
<thead><tr><th>Status</th><th>Run</th><th>Job</th><th>Trigger</th><th>Ref</th><th>Commit</th><th>Duration</th><th>Age</th></tr></thead>
<tbody id="runs">${runs.length > 0 ? runs.map((run) => runRow(run, now)) : emptyRow(8, 'No runs yet.')}</tbody>
</table></div>`,
  );
}

/** One fan-out destination, in words: delivered, still trying, or given up and why. */
function forwardText(entry: NonNullable<RunRecord['forwards']>[number]): string {
  const tries = `${entry.attempts} attempt${entry.attempts === 1 ? '' : 's'}`;
  if (entry.status === 'delivered') return `delivered (HTTP ${entry.lastStatus ?? '?'}, ${tries})`;
  if (entry.status === 'pending') return entry.attempts === 0 ? 'sending…' : `retrying after ${tries}: ${entry.lastError ?? ''}`;
  return `failed after ${tries}: ${entry.lastError ?? ''}`;
}

/** The run that took a superseded or interrupted run's place: a row the script shows once there is one. */
function nextRun(run: RunRecord): Html {
  const next = run.supersededBy ?? run.retriedBy;
  const hidden = next === undefined ? html` hidden` : '';
  return html`<dt class="next-run"${hidden}>Replaced by</dt><dd class="next-run"${hidden}><a id="next-run" class="mono" href="${next === undefined ? '' : runHref(next)}">${next ?? ''}</a></dd>`;
}

export function runPage(run: RunRecord, now: number): string {
  const live = liveFields(run, now);
  const field = (name: string, label: string, mono = false) => html`<dt>${label}</dt><dd data-field="${name}"${mono ? html` class="mono"` : ''}>${live[name]}</dd>`;
  return layout(
    `Run ${run.id}`,
    { page: 'run', runId: run.id },
    html`<p id="notice" class="notice" hidden></p>
<p class="crumbs"><a href="./">← All jobs and runs</a></p>
<h1>Run <code>${run.id}</code> <span id="run-status">${badge(run.status)}</span></h1>
<dl class="record">
<dt>Job</dt><dd>${run.job}</dd>
${run.source !== undefined ? html`<dt>Event</dt><dd>from ${run.source}</dd>` : html`<dt>Repository</dt><dd>${run.repo}</dd>`}
<dt>Ref</dt><dd class="mono">${run.ref || '—'}</dd>
<dt>Commit requested</dt><dd class="mono">${run.sha || '—'}</dd>
${field('deployedSha', 'Commit checked out', true)}
<dt>Trigger</dt><dd>${triggerText(run.trigger)}</dd>
<dt>Queued</dt><dd>${formatTime(run.queuedAt)}</dd>
${field('startedAt', 'Started')}
${field('finishedAt', 'Finished')}
${field('duration', 'Duration')}
${field('exit', 'Exit')}
${nextRun(run)}
${field('reason', 'Reason')}
${(run.forwards ?? []).map((entry) => html`<dt>Forwarded to</dt><dd><span class="mono">${entry.url}</span>: ${forwardText(entry)}</dd>`)}
</dl>
<h2>Log <a class="small" href="api/runs/${encodeURIComponent(run.id)}/log">raw</a></h2>
<pre id="log" class="log" tabindex="0">${run.status === 'queued' ? 'Waiting for the run to start…' : 'Loading the log…'}</pre>`,
  );
}

export function missingPage(what: string): string {
  return layout('Not found', { page: 'missing' }, html`<h1>Not found</h1>
<p>${what}</p>
<p><a href="./">← All jobs and runs</a></p>`);
}
