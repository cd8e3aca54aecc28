import { randomUUID } from 'node:crypto';
import type { JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { COMMIT_PATTERN } from '../providers/validate.js';
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

/** The shortest start of a commit id taken for the whole (git's own abbreviations are 7 or more). */
const SHORTEST_ABBREVIATION = 7;

/**
 * The full commit id that `sha` abbreviates, among the commits of `runs` (what they were asked
 * for and what they deployed): the tables show commits by their first 8 characters, and a
 * rollback names one of them. A full id, or anything not lowercase hex, is returned as it is
 * (checked as a commit later); an abbreviation that names no commit of those runs, or more
 * than one, is an error that asks for the whole id.
 */
export function expandCommit(sha: string, job: string, runs: Iterable<RunRecord>): string {
  if (COMMIT_PATTERN.test(sha) || !/^[0-9a-f]+$/.test(sha) || sha.length > 64) return sha;
  if (sha.length < SHORTEST_ABBREVIATION) throw new DeployhookError('INVALID_SHA', `Expected a commit id of at least ${SHORTEST_ABBREVIATION} characters (the whole 40 is safest), got ${JSON.stringify(sha)}`);
  const matches = new Set<string>();
  for (const run of runs) {
    for (const commit of [run.sha, run.deployedSha]) if (commit?.startsWith(sha)) matches.add(commit);
  }
  const [only, ...more] = matches;
  if (only !== undefined && more.length === 0) return only;
  if (only === undefined) throw new DeployhookError('INVALID_SHA', `No run of job ${job} that deployhook keeps has a commit starting with ${sha}: give the whole 40-character commit id (git rev-parse ${sha} in a clone)`);
  throw new DeployhookError('INVALID_SHA', `${sha} starts ${matches.size} commits of job ${job}'s runs (${[...matches].join(', ')}): give more of it`);
}
