import { constants, realpathSync, statSync } from 'node:fs';
import { chmod, chown, copyFile, mkdtemp, rmdir, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { inside } from '../config/checkout-clashes.js';
import { formatDuration, timerDelay } from '../config/duration.js';
import { secretsOfJob } from '../config/read-job-secrets.js';
import type { JobConfig } from '../config/types.js';
import { openRunLog, type RunLog } from '../log/run-log.js';
import { currentBootId, processStartTime } from '../runner/orphan-group.js';
import { runCommand } from '../runner/run-command.js';
import type { RunStore } from '../store/run-store.js';
import { commandEnvironment, userEnvironment } from './command-env.js';
import { eventFieldsOf, FIELD_PREFIX } from './event-fields.js';
import { createTidier, filterPaths, sync } from './prepare-checkout.js';
import { closingLine, writeHeader } from './run-log-lines.js';
import { type DeployContext, type Outcome, stoppedOutcome } from './run-outcome.js';
import type { ExecuteRun } from './run-queue.js';
import { forgetHousekeeping, type RunRecord } from './run-record.js';

export interface ExecutorOptions {
  store: RunStore;
  logger: Logger;
  /** PATH, HOME, LANG and the proxy variables of the daemon: the only part of its environment a run sees. */
  baseEnv: Readonly<Record<string, string>>;
  /** Every secret the daemon knows (webhook secrets, tokens): masked in every run log. */
  knownSecrets: () => readonly string[];
  /** Output kept per run log (the beginning and the end; the middle is dropped). */
  maxLogBytes: () => number;
  /** Told about every run that reaches its end (metrics). */
  onFinished?: (run: RunRecord) => void;
  /** Finished runs kept per job, with their logs. */
  keepRuns: () => number;
  now?: () => Date;
}

async function deploy(context: DeployContext): Promise<Outcome> {
  const { run, job, log, stop } = context;
  // A monotonic clock: a clock step (NTP at boot, say) must neither time out a run nor stretch it.
  const deadline = performance.now() + job.timeoutMs;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort('timeout'), timerDelay(job.timeoutMs));
  const endedEarly = await sync(context, timeout.signal)
    .then((outcome) => outcome ?? filterPaths(context, timeout.signal))
    .finally(() => clearTimeout(timer));
  if (endedEarly) return endedEarly;

  const cwd = job.workdir !== undefined ? join(job.checkout, job.workdir) : job.checkout;
  const folder = workFolder(cwd, job.remote !== undefined ? job.checkout : undefined);
  if (folder !== 'ok') {
    if (job.remote === undefined) return { status: 'failed', reason: `expected the workdir ${cwd} to be a folder, but it is not (any more)` };
    if (folder === 'outside') return { status: 'failed', reason: `expected the workdir ${job.workdir ?? '.'} to be a folder in commit ${run.deployedSha ?? run.sha}, but it is a link out of the checkout` };
    return { status: 'failed', reason: `expected the workdir ${job.workdir ?? '.'} to be a folder in commit ${run.deployedSha ?? run.sha}, but it is not` };
  }
  // The variables a generic job's `fields` set, by name (the values are the event's: in its file).
  const fieldNames = Object.keys(job.event?.fields ?? {});
  if (fieldNames.length > 0) log.note(`fields:   ${fieldNames.map((name) => `${FIELD_PREFIX}${name}`).join(' ')}`);
  log.note(`$ ${job.command.map((arg) => JSON.stringify(arg)).join(' ')}${job.runAs ? ` (as ${job.runAs.user})` : ''}`);
  await context.recorded;
  const env = commandEnvironment(job, run, userEnvironment(job, context.baseEnv), await eventFieldsOf(job, run));
  // Nothing may fail between making the copy and running the command, whose end removes it.
  const eventFile = await eventFileFor(run, job);
  env.DEPLOYHOOK_EVENT_FILE = eventFile;
  const result = await runCommand({
    argv: job.command,
    cwd,
    env,
    user: job.runAs,
    output: log.output,
    takePipes: log.pipeTaker,
    timeoutMs: Math.max(0, Math.round(deadline - performance.now())),
    killAfterMs: job.killGraceMs,
    signal: stop.signal,
    onStart: (pgid) => context.keepGroup(pgid, true),
  }).finally(() => (eventFile === run.eventFile ? undefined : removeEventCopy(eventFile)));
  if (result.leftovers) log.note('the command left processes running in its process group; they were terminated');
  if (result.escaped) log.note("a process that left the command's process group and session (setsid, a daemon) still held its output open; it was left running, and its output is no longer read");
  const ended = { exitCode: result.exitCode, signal: result.signal };
  if (result.startError !== undefined) return { ...ended, status: 'failed', reason: result.startError };
  if (result.lost !== undefined) return { ...ended, status: 'failed', reason: `deployhook lost track of the command (${result.lost}); its processes were stopped` };
  if (result.timedOut) return { ...ended, status: 'timed_out', reason: `the run exceeded its timeout of ${formatDuration(job.timeoutMs)}` };
  if (result.cancelled) return { ...ended, ...stoppedOutcome(stop, 'while the command was running') };
  if (result.exitCode === 0) return { ...ended, status: 'succeeded' };
  return { ...ended, status: 'failed', reason: result.signal ? `the command was killed by ${result.signal}` : `the command exited with code ${String(result.exitCode)}` };
}

/**
 * The record's process group: git's steps, then the command, then git's housekeeping after the
 * run. The group id, its leader's start
 * time and the boot are saved together, once the start time is read, so that a record never
 * pairs one group's id with another's start time; a group reported after a newer one is dropped.
 * So is a group whose leader ended before its start time could be read (a quick git step): a
 * group id without a start time would let recovery stop whatever leads a group of that id later.
 */
function groupKeeper(run: RunRecord, persist: () => void, housekeeping?: { ended: () => boolean }): (pgid: number, command?: boolean) => void {
  let newest: number | undefined;
  return (pgid, command = false) => {
    newest = pgid;
    void Promise.all([processStartTime(pgid), currentBootId()]).then(([startTime, bootId]) => {
      if (newest !== pgid || startTime === undefined || housekeeping?.ended() === true) return;
      if (housekeeping) run.housekeeping = true;
      run.pgid = pgid;
      run.pgidStartTime = startTime;
      if (bootId !== '') run.pgidBootId = bootId;
      else delete run.pgidBootId;
      if (command) run.commandGroup = true;
      else delete run.commandGroup;
      persist();
    });
  };
}

/**
 * Whether the command's folder is one, and, where the repository fills the checkout, inside
 * it once links are followed: a link the repository commits (`deploy -> /root`) must not pick
 * where the command starts (the process helper enters it only as the job's user, but node's
 * own spawn, used when the helper cannot be, enters it before it drops root). Synchronous,
 * like the other small reads between git and the command (see syncCheckout).
 */
function workFolder(path: string, checkout: string | undefined): 'ok' | 'missing' | 'outside' {
  try {
    const real = realpathSync(path);
    if (!statSync(real).isDirectory()) return 'missing';
    return checkout === undefined || inside(real, realpathSync(checkout)) ? 'ok' : 'outside';
  } catch {
    return 'missing';
  }
}

/**
 * The payload file the command reads. The state folder is the daemon's own, so a command
 * that runs as another user gets a private copy it owns, removed after the run. The copy is
 * created, never opened where it already exists, in a folder with a random name (mkdtemp)
 * that stays the daemon's: the user may pass through it (mode 0711) but not add, rename or
 * list entries, so nothing there can become a link for the daemon, as root, to write or
 * delete through. Removal is one unlink and one rmdir, never a walk of the folder.
 */
async function eventFileFor(run: RunRecord, job: JobConfig): Promise<string> {
  if (!job.runAs) return run.eventFile;
  const folder = await mkdtemp(join(tmpdir(), 'deployhook-event-'));
  const copy = join(folder, `${run.id}.event.json`);
  try {
    await chmod(folder, 0o711);
    await copyFile(run.eventFile, copy, constants.COPYFILE_EXCL);
    await chmod(copy, 0o600);
    await chown(copy, job.runAs.uid, job.runAs.gid);
    return copy;
  } catch (error) {
    await removeEventCopy(copy);
    throw error;
  }
}

async function removeEventCopy(copy: string): Promise<void> {
  await unlink(copy).catch(() => undefined);
  await rmdir(dirname(copy)).catch(() => undefined);
}

async function logAndDeploy(context: Omit<DeployContext, 'log'>, secrets: readonly string[], maxLogBytes: number, elapsedMs: () => number): Promise<Outcome> {
  const { run, job } = context;
  let log: RunLog;
  try {
    log = await openRunLog(run.logPath, secretsOfRun(job, secrets), maxLogBytes);
  } catch (error) {
    // Decided: a cancel or a shutdown from now on finds nothing left to stop or repeat.
    context.stop.settle();
    return { status: 'failed', reason: `could not open the run log at ${run.logPath}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  let outcome: Outcome;
  try {
    writeHeader(log, run);
    outcome = await deploy({ ...context, log });
  } catch (error) {
    // Whatever went wrong, the run ends with a record and a closed log, never stuck `running`.
    outcome = { status: 'failed', reason: `deployhook failed: ${error instanceof Error ? error.message : String(error)}` };
  }
  context.stop.settle();
  await log.close(closingLine(outcome, elapsedMs()));
  if (log.error && (outcome.status === 'succeeded' || outcome.status === 'skipped')) {
    return { ...outcome, status: 'failed', reason: `the run log could not be written completely: ${(log.error as NodeJS.ErrnoException).code ?? log.error.message}` };
  }
  return outcome;
}

/** Per job from another config than the daemon's (a run started before a reload), its secrets added to the daemon's. */
const runSecrets = new WeakMap<JobConfig, { known: readonly string[]; all: readonly string[] }>();

/**
 * What a run's log masks: every secret the daemon knows, the job's own among them. The daemon's
 * list itself whenever it holds the job's, so that every run of a config masks with one list,
 * whose masker is made once (see createMasker); only a job of an earlier config gets a list of
 * its own.
 */
function secretsOfRun(job: JobConfig, known: readonly string[]): readonly string[] {
  const own = secretsOfJob(job);
  if (own.every((secret) => known.includes(secret))) return known;
  const cached = runSecrets.get(job);
  if (cached?.known === known) return cached.all;
  const all = Object.freeze([...new Set([...own, ...known])]);
  runSecrets.set(job, { known, all });
  return all;
}

function errorText(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
}

/** Brings the checkout to the run's commit, runs the job's command, and records everything. */
export function createExecutor(options: ExecutorOptions): ExecuteRun {
  const now = options.now ?? (() => new Date());
  const tidy = createTidier(options.baseEnv);
  return async (run, job, stop) => {
    const logger = options.logger.child({ job: job.name, run: run.id, delivery: run.trigger.delivery });
    // Saves of one record happen in order, so a late save never overwrites a newer state.
    let saving: Promise<void> = Promise.resolve();
    /** Why the last save failed, until one succeeds. */
    let unsaved: unknown;
    const persist = () => {
      saving = saving.then(() => options.store.save(run)).then(
        () => void (unsaved = undefined),
        (error: unknown) => {
          unsaved = error;
          logger.error({ err: error }, 'could not save run record');
        },
      );
      return saving;
    };
    const started = now();
    run.status = 'running';
    run.startedAt = started.toISOString();
    // Not awaited here: a crash during git leaves the run `queued` on disk, and it runs again.
    // The command waits for it: a deploy that cannot be recorded as running (a full disk), or
    // whose payload file is missing, fails before its command starts.
    const recorded = Promise.all([
      persist().then(() => {
        if (unsaved !== undefined) throw new Error(`could not record the run as running: ${errorText(unsaved)}`);
      }),
      options.store.placeEvent(run).catch((error: unknown) => {
        throw new Error(`could not write the payload file: ${errorText(error)}`);
      }),
    ]).then(() => undefined);
    // Awaited only on the way to the command: a run that ends in git must not leave it unhandled.
    recorded.catch(() => undefined);
    logger.info({ sha: run.sha, ref: run.ref }, 'run started');

    const lastDeployed = options.store.latest(job.name, 'succeeded')?.deployedSha;
    const final = await logAndDeploy({ run, job, stop, baseEnv: options.baseEnv, persist, keepGroup: groupKeeper(run, persist), recorded, lastDeployed }, options.knownSecrets(), options.maxLogBytes(), () => now().getTime() - started.getTime());
    const finished = now();
    run.status = final.status;
    run.finishedAt = finished.toISOString();
    run.durationMs = finished.getTime() - started.getTime();
    if (final.exitCode !== undefined) run.exitCode = final.exitCode;
    if (final.signal !== undefined) run.signal = final.signal;
    if (final.reason !== undefined) run.reason = final.reason;
    persist();
    await saving;
    logger.info({ status: run.status, exitCode: run.exitCode, durationMs: run.durationMs, deployedSha: run.deployedSha }, 'run finished');
    options.onFinished?.(run);
    // git's housekeeping, once the record is final (a crash now repeats nothing) and before
    // the job's next run can start (no two gits in the checkout at once).
    if (run.deployedSha !== undefined) {
      // Its group goes in the record, as the run's own did: a daemon that dies meanwhile leaves
      // it running, and the next start stops it before the job's next run removes its locks.
      let ended = false;
      const tidied = await tidy(job, AbortSignal.any([stop.signal, stop.closing]), groupKeeper(run, persist, { ended: () => ended }));
      ended = true;
      if (run.housekeeping) {
        forgetHousekeeping(run);
        await persist();
      }
      if (tidied.done) for (const note of tidied.notes) logger.warn({ checkout: job.checkout }, `git's housekeeping: ${note}`);
      if (tidied.done && tidied.error !== undefined) logger.warn({ checkout: job.checkout, durationMs: tidied.durationMs, reason: tidied.error }, "git's housekeeping in the checkout did not finish; the next run tries again");
      else if (tidied.done) logger.info({ checkout: job.checkout, durationMs: tidied.durationMs }, "git's housekeeping in the checkout done");
    }
    await options.store.prune(job.name, options.keepRuns()).catch((error: unknown) => logger.error({ err: error }, 'could not remove old runs'));
    return run;
  };
}
