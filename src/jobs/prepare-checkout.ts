import { Writable } from 'node:stream';
import type { JobConfig } from '../config/types.js';
import { formatDuration } from '../config/duration.js';
import { DeployhookError, RunAbortedError } from '../errors.js';
import { openCommitHistory } from '../git/changed-files.js';
import { syncCheckout, tidyCheckout } from '../git/sync.js';
import { userEnvironment } from './command-env.js';
import { jobGitAuth } from './git-auth.js';
import { checkPaths, pathsFilterApplies } from './paths-filter.js';
import { printable } from '../log/printable.js';
import { type DeployContext, type Outcome, stoppedInGit } from './run-outcome.js';

/**
 * Brings the checkout to the run's commit. Resolves undefined when the command may run,
 * or with how the run ended (git failed, stopped, timed out).
 */
export async function sync(context: DeployContext, timeout: AbortSignal): Promise<Outcome | undefined> {
  const { run, job, log, stop, baseEnv, keepGroup } = context;
  // A generic job without a remote runs in its folder as it is: no git at all.
  if (job.remote === undefined) {
    log.note(`no remote: running in ${job.checkout} as it is, without git`);
    return undefined;
  }
  const signal = stop.signal;
  const target = run.exact ? `exactly ${run.sha}` : run.branch !== undefined ? `the tip of ${printable(run.branch)} (pushed: ${run.sha})` : run.tag !== undefined ? `the commit of tag ${printable(run.tag)}` : run.sha;
  log.note(`syncing ${job.checkout} to ${target}`);
  try {
    const synced = await syncCheckout({
      remote: job.remote,
      checkout: job.checkout,
      sha: run.sha,
      ...(run.branch !== undefined && !run.exact ? { branch: run.branch } : {}),
      ...(run.tag !== undefined && !run.exact ? { tag: run.tag } : {}),
      submodules: job.submodules,
      auth: jobGitAuth(job),
      env: userEnvironment(job, baseEnv),
      output: log.output,
      signal: AbortSignal.any([signal, timeout]),
      user: job.runAs,
      onGroup: keepGroup,
    });
    run.deployedSha = synced.sha;
    if (synced.sha !== run.sha) log.note(`the branch has moved on since this push: deploying its tip ${synced.sha}`);
    context.persist();
    return undefined;
  } catch (error) {
    if (error instanceof RunAbortedError) return stoppedInGit(stop, job);
    return { status: 'failed', reason: error instanceof DeployhookError ? error.message : `git failed: ${String(error)}` };
  }
}

/** With `paths`, a push that changed no matching file ends `skipped` after the sync, before the command. */
export async function filterPaths(context: DeployContext, timeout: AbortSignal): Promise<Outcome | undefined> {
  const { run, job, log, stop } = context;
  if (job.paths === undefined || job.remote === undefined || !pathsFilterApplies(run)) return undefined;
  const history = openCommitHistory({ checkout: job.checkout, remote: job.remote, auth: jobGitAuth(job), env: userEnvironment(job, context.baseEnv), output: log.output, signal: AbortSignal.any([stop.signal, timeout]), user: job.runAs });
  try {
    const verdict = await checkPaths({ paths: job.paths, target: run.deployedSha ?? run.sha, lastDeployed: context.lastDeployed, before: run.before, history, note: (text) => log.note(text) });
    return verdict.deploy ? undefined : { status: 'skipped', reason: verdict.reason };
  } catch (error) {
    if (error instanceof RunAbortedError) return stoppedInGit(stop, job);
    return { status: 'failed', reason: error instanceof DeployhookError ? error.message : `could not list the changed files: ${String(error)}` };
  }
}

/**
 * How often a checkout gets git's housekeeping, at most. Each check is a process the daemon
 * starts, which costs a busy daemon milliseconds of its event loop; git's own thresholds
 * (6,700 loose objects, 50 packs) are far from what ten minutes of deploys fetch.
 */
const TIDY_EVERY_MS = 10 * 60_000;
/** The most git's housekeeping may take (a repack of a large repository). */
const TIDY_TIMEOUT_MS = 10 * 60_000;

/** What became of git's housekeeping after a run. */
export type Tidied = { done: false } | { done: true; durationMs: number; error?: string; notes: string[] };

/**
 * git's housekeeping in a job's checkout (see `tidyCheckout`), after a run whose sync
 * succeeded and whose record is final: the first time after the daemon starts, then at most
 * every ten minutes per checkout (after a failure, at the next run). Stopped by `signal` and
 * after ten minutes (or the job's timeout, if shorter). Never rejects.
 */
export function createTidier(baseEnv: Readonly<Record<string, string>>): (job: JobConfig, signal: AbortSignal, onGroup?: (pgid: number) => void) => Promise<Tidied> {
  const lastTidied = new Map<string, number>();
  return async (job, signal, onGroup) => {
    const last = lastTidied.get(job.checkout);
    if (job.remote === undefined || signal.aborted || (last !== undefined && performance.now() - last < TIDY_EVERY_MS)) return { done: false };
    const started = performance.now();
    lastTidied.set(job.checkout, started);
    const limitMs = Math.min(job.timeoutMs, TIDY_TIMEOUT_MS);
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort('timeout'), limitMs);
    const notes: string[] = [];
    try {
      await tidyCheckout({
        checkout: job.checkout,
        remote: job.remote,
        auth: jobGitAuth(job),
        env: userEnvironment(job, baseEnv),
        output: new Writable({
          write: (chunk: Buffer, _encoding, done) => {
            // git's own output is in its error; what deployhook did besides (a stale lock removed) is kept.
            for (const line of chunk.toString('utf8').split('\n')) if (line.startsWith('[deployhook] ') && notes.length < 16) notes.push(line.slice('[deployhook] '.length));
            done();
          },
        }),
        signal: AbortSignal.any([signal, timeout.signal]),
        user: job.runAs,
        onGroup,
      });
      return { done: true, durationMs: Math.round(performance.now() - started), notes };
    } catch (error) {
      lastTidied.delete(job.checkout);
      const why = error instanceof RunAbortedError ? (timeout.signal.aborted ? `it took longer than ${formatDuration(limitMs)}` : 'it was stopped') : error instanceof Error ? error.message : String(error);
      return { done: true, durationMs: Math.round(performance.now() - started), error: why, notes };
    } finally {
      clearTimeout(timer);
    }
  };
}
