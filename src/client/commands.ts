import { hostname, userInfo } from 'node:os';
import { formatDuration } from '../config/duration.js';
import { FINAL_STATUSES, type RunRecord } from '../jobs/run-record.js';
import { DeployhookError } from '../errors.js';
import type { ApiClient } from './api-client.js';
import { age, formatTable, printable, short } from './table.js';

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

export async function listRuns(client: ApiClient, filter: { job?: string | undefined; status?: string | undefined; limit?: string | undefined; before?: string | undefined }, print: Print): Promise<void> {
  const query = new URLSearchParams(Object.entries(filter).filter((entry): entry is [string, string] => entry[1] !== undefined));
  const { runs } = await client.get<{ runs: RunRecord[] }>(`/api/runs?${query.toString()}`);
  // A commit counts as deployed once its command succeeded: a failed, cancelled or interrupted run's checkout shows nothing here.
  const rows = runs.map((run) => [run.id, run.job, run.status, run.trigger.type, target(run), short(run.sha), short(run.status === 'succeeded' ? run.deployedSha : undefined), age(run.queuedAt), duration(run)]);
  print(formatTable(['RUN', 'JOB', 'STATUS', 'TRIGGER', 'REF', 'COMMIT', 'DEPLOYED', 'QUEUED', 'DURATION'], rows));
}

/** Failures that a daemon's restart or a proxy's timeout makes, which asking again can outlast. */
const PASSING = new Set(['STREAM_CLOSED', 'DAEMON_UNREACHABLE', 'API_UNAVAILABLE']);

export interface FollowOptions {
  /** How long to go on asking once the daemon is lost. */
  retryForMs: number;
  pause: (ms: number) => Promise<void>;
  /** The daemon has answered already (deploy -f: it queued the run), so losing it is worth outlasting. */
  answered?: boolean;
}

export const FOLLOW: FollowOptions = { retryForMs: 60_000, pause: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };

/** A stream that lasted this long before it broke was cut (a proxy's timeout): asked again at once. */
const LIVED_MS = 1000;

/**
 * Prints a run's log; with `follow`, until the run ends. A followed log whose connection breaks
 * off is asked for again at once, from the bytes printed (a run log is only appended to): a
 * proxy's timeout, or node's own on a quiet stream, passes unseen. A daemon that cannot be
 * reached then (restarting), or streams that break as soon as they open, are asked every second
 * for up to `retryForMs`, said once on `note`; a daemon that never answered (a wrong URL) is an
 * error at once. The daemon says which byte each answer starts at, and whatever was printed
 * already is left out (a proxy that drops the query string sends it all again). A run without
 * a log (it never started: superseded, cancelled while queued) gets one line on `note` instead,
 * saying why; so does an interrupted run, with the run that repeats it once there is one.
 * Resolves with the run's status.
 */
export async function showLog(client: ApiClient, runId: string, follow: boolean, write: (chunk: Uint8Array) => void, note: Print, options: FollowOptions = FOLLOW): Promise<string> {
  const path = `/api/runs/${encodeURIComponent(runId)}`;
  let printed = 0;
  let answered = options.answered === true;
  let lost: number | undefined;
  let told = false;
  let openedAt: number | undefined;
  const reached = () => {
    answered = true;
    lost = undefined;
    told = false;
  };
  /** Runs `step` until it gets through, while the daemon is lost for less than retryForMs. */
  async function persist<T>(step: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        const result = await step();
        reached();
        return result;
      } catch (error) {
        if (!follow || !answered || !(error instanceof DeployhookError) || !PASSING.has(error.code)) throw error;
        if (openedAt !== undefined && Date.now() - openedAt >= LIVED_MS) reached();
        openedAt = undefined;
        if (lost === undefined) {
          lost = Date.now();
          continue;
        }
        if (!told) note(`${error.message.replace(/: is the daemon [^?]*\?/, '')}; trying again for up to ${Math.round(options.retryForMs / 1000)} s`);
        told = true;
        if (Date.now() - lost >= options.retryForMs) throw error;
        await options.pause(1000);
      }
    }
  }
  // Removed by keep_runs once its log had been printed, before the next question about it (a flood of runs).
  const gone = (error: unknown) => {
    if (printed > 0 && error instanceof DeployhookError && error.code === 'API_NOT_FOUND') return undefined;
    throw error;
  };
  for (;;) {
    const streamed = await persist(async () => {
      let skip = 0;
      const opened = (start: number) => {
        answered = true;
        openedAt = Date.now();
        skip = Math.max(0, printed - start);
      };
      for await (const chunk of client.stream(`${path}/log?${follow ? 'follow=1&' : ''}offset=${printed}`, opened)) {
        const fresh = skip > 0 ? chunk.subarray(Math.min(skip, chunk.length)) : chunk;
        skip -= chunk.length - fresh.length;
        if (fresh.length === 0) continue;
        reached();
        printed += fresh.length;
        write(fresh);
      }
      return true;
    }).catch(gone);
    const record = streamed === undefined ? undefined : await persist(() => client.get<{ run: RunRecord }>(path)).catch(gone);
    if (record === undefined) {
      note(`run ${runId} is no longer kept: keep_runs removed it as its log ended, and how it ended is not known here (deployhook runs lists what is kept)`);
      return 'removed';
    }
    const { run } = record;
    // A stream that ended while the run goes on (a proxy ended it) is asked for again.
    if (follow && !FINAL_STATUSES.has(run.status)) {
      await options.pause(1000);
      continue;
    }
    const reason = run.reason !== undefined ? `: ${printable(run.reason)}` : '';
    const replaced = run.status === 'interrupted' && run.supersededBy !== undefined ? `; follow that one: deployhook logs ${run.supersededBy} -f` : '';
    const repeat = run.retriedBy !== undefined ? `; run ${run.retriedBy} repeats it: deployhook logs ${run.retriedBy} -f` : replaced;
    if (printed === 0) note(`run ${run.id} of job ${run.job} is ${run.status} and has no output${reason}${repeat}`);
    else if (run.status === 'interrupted') note(`run ${run.id} of job ${run.job} is interrupted${reason}${repeat}`);
    return run.status;
  }
}

/** The user's name; a uid without one (a container's, systemd's DynamicUser) is named by its number. */
function whoAmI(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER || `uid ${process.getuid?.() ?? '?'}`;
  }
}

export async function deploy(client: ApiClient, job: string, target: { ref?: string | undefined; sha?: string | undefined }, print: Print): Promise<string> {
  const requestedBy = `${whoAmI()}@${hostname()}`;
  const body = { ...(target.ref !== undefined ? { ref: target.ref } : {}), ...(target.sha !== undefined ? { sha: target.sha } : {}), requested_by: requestedBy };
  const { run } = await client.post<{ run: { id: string; job: string; sha: string; ref: string; exact: boolean } }>(`/api/jobs/${encodeURIComponent(job)}/deploy`, body);
  print(`queued run ${run.id} of job ${run.job}: ${run.exact ? `exactly ${run.sha}` : `the tip of ${printable(run.ref)} (now ${short(run.sha)})`}`);
  return run.id;
}

export async function cancel(client: ApiClient, runId: string, print: Print): Promise<void> {
  const { run } = await client.post<{ run: { id: string; job: string; status: string } }>(`/api/runs/${encodeURIComponent(runId)}/cancel`, {});
  print(`cancelling run ${run.id} of job ${run.job} (it was ${run.status})`);
}
