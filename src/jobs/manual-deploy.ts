import { randomUUID } from 'node:crypto';
import type { JobConfig } from '../config/types.js';
import { checkSha, resolveTarget } from './resolve-target.js';
import type { RunQueue } from './run-queue.js';
import type { RunRecord } from './run-record.js';

export interface ManualDeploy {
  /** A branch or full ref: deploy its tip, as a push would. */
  ref?: string | undefined;
  /** A commit: deploy exactly it (a rollback), whatever the branch says now. */
  sha?: string | undefined;
  /** Who asked, as the client says; recorded in the run. */
  requestedBy: string;
}

/**
 * Queues an operator's deploy through the same queue, coalescing and records as webhooks.
 * With `sha`, exactly that commit is checked out (it must be on the remote); with only `ref`
 * (or nothing: the job's own branch, see resolveTarget), the branch's tip.
 */
export async function queueManualDeploy(queue: RunQueue, job: JobConfig, request: ManualDeploy, env: Readonly<Record<string, string | undefined>>): Promise<RunRecord> {
  const exact = request.sha !== undefined;
  // A rollback names its commit; the ref (for DEPLOYHOOK_REF) defaults to the job's own branch
  // (resolveTarget), or for a generic job to the one branch its events deploy.
  const ref = request.ref ?? (job.event !== undefined ? job.branches[0] : undefined);
  const target = exact ? await resolveTarget(job, { ref, sha: checkSha(request.sha ?? ''), refIsLabel: true }, env, true) : await resolveTarget(job, { ref }, env, true);
  const branch = target.ref.startsWith('refs/heads/') ? target.ref.slice('refs/heads/'.length) : undefined;
  // A tag is deployed as a pushed tag is: fetched by name and peeled to its commit (DEPLOYHOOK_TAG set).
  const tag = target.ref.startsWith('refs/tags/') ? target.ref.slice('refs/tags/'.length) : undefined;
  const requestedBy = request.requestedBy.replace(/[^\w.@+:/ -]/g, '?').slice(0, 100) || 'unknown';
  const event = { manual: true, ref: target.ref, sha: target.sha, exact, requested_by: requestedBy };
  return queue.enqueue(job, {
    trigger: { type: 'manual', provider: job.provider, delivery: randomUUID(), pusher: requestedBy, requestedBy },
    repo: job.repo,
    ref: target.ref,
    ...(branch !== undefined ? { branch } : {}),
    ...(tag !== undefined ? { tag } : {}),
    sha: target.sha,
    before: '0'.repeat(40),
    ...(exact ? { exact: true } : {}),
    event: Buffer.from(JSON.stringify(event)),
  });
}
