import type { JobConfig } from '../config/types.js';
import type { SignedEvent } from '../providers/types.js';
import { unmetCondition } from './event-match.js';
import { resolveTarget } from './resolve-target.js';
import type { RunRequest } from './run-queue.js';

type Env = Readonly<Record<string, string | undefined>>;

/** A run a delivery asks for: the job, and how to build its request from the verified JSON. */
export interface PlannedRun {
  job: JobConfig;
  request(event: Buffer): Promise<RunRequest>;
}

/**
 * What an event run records. Without a remote there is nothing to check out: repo, ref and
 * commit stay empty and `source` says where the event came from. With a remote, the run
 * deploys the tip of the job's one branch as the remote has it now, resolved the way an
 * operator's deploy resolves a ref.
 */
async function eventRequest(job: JobConfig, event: SignedEvent, body: Buffer, env: Env): Promise<RunRequest> {
  const base = {
    trigger: { type: 'webhook' as const, provider: event.provider, delivery: event.deliveryId, pusher: '' },
    repo: '',
    before: '',
    source: event.source,
    event: body,
  };
  const branch = job.branches[0];
  if (job.remote === undefined || branch === undefined) return { ...base, ref: '', sha: '' };
  const target = await resolveTarget(job, { ref: branch }, env, true);
  return { ...base, ref: target.ref, branch, sha: target.sha };
}

/**
 * Of the verified jobs, those whose `when` holds for the event, each with its run; the reason
 * why each other one does not run is added to `reasons`.
 */
export function planEventRuns(verified: readonly JobConfig[], event: SignedEvent, reasons: string[], env: Env): PlannedRun[] {
  const planned: PlannedRun[] = [];
  for (const job of verified) {
    const unmet = job.event ? unmetCondition(job.event, event.payload) : 'the job takes no events';
    if (unmet !== undefined) reasons.push(`the event does not match \`when\` of job ${job.name}: ${unmet}`);
    else planned.push({ job, request: (body) => eventRequest(job, event, body, env) });
  }
  return planned;
}
