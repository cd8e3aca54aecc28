import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { formatDuration } from '../config/duration.js';
import type { JobConfig } from '../config/types.js';
import { DeployhookError, RunAbortedError } from '../errors.js';
import { syncCheckout } from '../git/sync.js';
import { openRunLog, type RunLog } from '../log/run-log.js';
import { runCommand } from '../runner/run-command.js';
import type { RunStore } from '../store/run-store.js';
import { commandEnvironment } from './command-env.js';
import type { ExecuteRun } from './run-queue.js';
import type { RunRecord, RunStatus } from './run-record.js';

export interface ExecutorOptions {
  store: RunStore;
  logger: Logger;
  /** PATH, HOME and LANG of the daemon: the only part of its environment a run sees. */
  baseEnv: Readonly<Record<string, string>>;
  now?: () => Date;
}

/** Payload data shown in the log header cannot forge lines: control characters are replaced. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  return text.replace(/[\u0000-\u001f\u007f]/g, '?');
}

function writeHeader(log: RunLog, run: RunRecord): void {
  const { trigger } = run;
  log.note(`run ${run.id} of job ${run.job}`);
  log.note(`repo:     ${printable(run.repo)}`);
  log.note(`ref:      ${printable(run.ref)}`);
  log.note(`commit:   ${run.sha}`);
  log.note(`delivery: ${printable(trigger.delivery)} (${trigger.provider}, pushed by ${printable(trigger.pusher) || 'unknown'})`);
  log.note(`started:  ${run.startedAt ?? ''}`);
}

interface Outcome {
  status: RunStatus;
  exitCode?: number | null;
  signal?: string | null;
  reason?: string;
}

async function deploy(run: RunRecord, job: JobConfig, log: RunLog, baseEnv: Readonly<Record<string, string>>): Promise<Outcome> {
  const deadline = Date.now() + job.timeoutMs;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort('timeout'), job.timeoutMs);
  try {
    log.note(`syncing ${job.checkout} to ${run.sha}`);
    const auth = {
      ...(job.sshKey !== undefined ? { sshKey: job.sshKey } : {}),
      ...(job.knownHosts !== undefined ? { knownHosts: job.knownHosts } : {}),
      ...(job.token !== undefined ? { username: job.token.user, password: job.token.value } : {}),
    };
    const synced = await syncCheckout({ remote: job.remote, checkout: job.checkout, sha: run.sha, submodules: job.submodules, auth, env: { ...baseEnv }, output: log.output, signal: timeout.signal });
    run.deployedSha = synced.sha;
  } catch (error) {
    if (error instanceof RunAbortedError) return { status: error.code === 'RUN_TIMED_OUT' ? 'timed_out' : 'cancelled', reason: `${error.message} while git was running` };
    const reason = error instanceof DeployhookError ? error.message : `git failed: ${String(error)}`;
    return { status: 'failed', reason };
  } finally {
    clearTimeout(timer);
  }

  const cwd = job.workdir !== undefined ? join(job.checkout, job.workdir) : job.checkout;
  if (!(await stat(cwd).then((info) => info.isDirectory(), () => false))) {
    return { status: 'failed', reason: `expected the workdir ${job.workdir ?? '.'} to be a folder in commit ${run.sha}, but it is not` };
  }
  log.note(`$ ${job.command.map((arg) => JSON.stringify(arg)).join(' ')}`);
  const result = await runCommand({
    argv: job.command,
    cwd,
    env: commandEnvironment(job, run, baseEnv),
    output: log.output,
    timeoutMs: Math.max(0, deadline - Date.now()),
    killAfterMs: job.killGraceMs,
  });
  if (result.leftovers) log.note('the command left processes running in its process group; they were terminated');
  const ended = { exitCode: result.exitCode, signal: result.signal };
  if (result.startError !== undefined) return { ...ended, status: 'failed', reason: result.startError };
  if (result.timedOut) return { ...ended, status: 'timed_out', reason: `the run exceeded its timeout of ${formatDuration(job.timeoutMs)}` };
  if (result.cancelled) return { ...ended, status: 'cancelled', reason: 'the run was cancelled' };
  if (result.exitCode === 0) return { ...ended, status: 'succeeded' };
  return { ...ended, status: 'failed', reason: result.signal ? `the command was killed by ${result.signal}` : `the command exited with code ${String(result.exitCode)}` };
}

function closingLine(outcome: Outcome, durationMs: number): string {
  const how = outcome.signal ? `signal ${outcome.signal}` : outcome.exitCode !== undefined && outcome.exitCode !== null ? `exit code ${outcome.exitCode}` : 'no exit code';
  return `finished: ${outcome.status}, ${how}, after ${formatDuration(durationMs)}${outcome.reason ? ` (${outcome.reason})` : ''}`;
}

async function logAndDeploy(run: RunRecord, job: JobConfig, baseEnv: Readonly<Record<string, string>>, elapsedMs: () => number): Promise<Outcome> {
  let log: RunLog;
  try {
    log = await openRunLog(run.logPath, [...job.secrets, ...(job.token ? [job.token.value] : [])]);
  } catch (error) {
    return { status: 'failed', reason: `could not open the run log at ${run.logPath}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  writeHeader(log, run);
  const outcome = await deploy(run, job, log, baseEnv);
  log.note(closingLine(outcome, elapsedMs()));
  await log.close();
  if (log.error && outcome.status === 'succeeded') {
    return { ...outcome, status: 'failed', reason: `the run log could not be written completely: ${(log.error as NodeJS.ErrnoException).code ?? log.error.message}` };
  }
  return outcome;
}

/** Brings the checkout to the run's commit, runs the job's command, and records everything. */
export function createExecutor(options: ExecutorOptions): ExecuteRun {
  const now = options.now ?? (() => new Date());
  return async (run, job) => {
    const logger = options.logger.child({ job: job.name, run: run.id, delivery: run.trigger.delivery });
    const started = now();
    run.status = 'running';
    run.startedAt = started.toISOString();
    await options.store.save(run);
    logger.info({ sha: run.sha, ref: run.ref }, 'run started');

    const final = await logAndDeploy(run, job, options.baseEnv, () => now().getTime() - started.getTime());
    const finished = now();
    run.status = final.status;
    run.finishedAt = finished.toISOString();
    run.durationMs = finished.getTime() - started.getTime();
    if (final.exitCode !== undefined) run.exitCode = final.exitCode;
    if (final.signal !== undefined) run.signal = final.signal;
    if (final.reason !== undefined) run.reason = final.reason;
    await options.store.save(run);
    logger.info({ status: run.status, exitCode: run.exitCode, durationMs: run.durationMs, deployedSha: run.deployedSha }, 'run finished');
    return run;
  };
}
