import type { Logger } from 'pino';
import type { JobConfig } from '../config/types.js';
import { closeCrashedLog } from '../log/crashed-log.js';
import { groupsCarrying, stopOrphanGroup } from '../runner/orphan-group.js';
import type { LoadedRuns, RunStore } from '../store/run-store.js';
import type { RunQueue } from './run-queue.js';
import { forgetHousekeeping, type RunRecord } from './run-record.js';

export interface RecoverOptions {
  /** What the store read from disk at start. */
  loaded: LoadedRuns;
  store: RunStore;
  queue: RunQueue;
  job: (name: string) => JobConfig | undefined;
  logger: Logger;
  /** Grace between SIGTERM and SIGKILL for leftovers of a run the daemon died in. */
  killGraceMs: number;
  /**
   * Told about each run recovery ends (interrupted, superseded, cancelled) once its record is
   * saved, for metrics; one whose save failed is recovered, and told, at the next start.
   */
  onFinished?: (run: RunRecord) => void;
  now?: () => Date;
}

export interface Recovered {
  resumed: number;
  retried: number;
  interrupted: number;
  skipped: number;
}

/** A start time no process has: a group found without its leader must still have none when it is stopped. */
const LEADER_GONE = 'gone';

/**
 * Picks up where the last daemon left off. Queued runs go back in line. A run that was
 * running when the daemon died is marked interrupted (its leftover processes stopped), and
 * its job runs again for the commit it was asked for; so does a run interrupted by a
 * shutdown. Corrupt record files are reported and skipped, never fatal.
 */
export async function recoverRuns(options: RecoverOptions): Promise<Recovered> {
  const { store, queue, logger } = options;
  const now = options.now ?? (() => new Date());
  const { records, problems } = options.loaded;
  for (const problem of problems) logger.warn({ problem }, 'skipped a run record that could not be read');
  const result: Recovered = { resumed: 0, retried: 0, interrupted: 0, skipped: problems.length };
  /** Stops the group a record names if it still runs (see stopOrphanGroup), with its job's kill_grace. */
  const killGraceOf = (record: RunRecord) => options.job(record.job)?.killGraceMs ?? options.killGraceMs;
  const stopGroupOf = (record: RunRecord, pgid: number) => stopOrphanGroup(pgid, record.pgidStartTime, killGraceOf(record), record.pgidBootId);

  /** Saves a record recovery changed; false (and logged) when that failed. */
  const saveOrLog = (record: RunRecord) =>
    store.save(record).then(
      () => true,
      (error: unknown) => {
        logger.error({ job: record.job, run: record.id, err: error }, 'could not save a recovered run record');
        return false;
      },
    );
  /** Saves a record recovery ended, and tells `onFinished` once it is saved. */
  const saveEnded = async (record: RunRecord) => {
    if (await saveOrLog(record)) options.onFinished?.(record);
  };

  // git's housekeeping runs after a run's record is final, in a group that record names while
  // it works: one left by a daemon that died is stopped before the job's next run works in the
  // checkout.
  for (const record of records.filter((candidate) => candidate.housekeeping === true && candidate.status !== 'running')) {
    // Only a group whose boot is known: an old record's id may name another's group since.
    if (record.pgid !== undefined && record.pgidBootId !== undefined && (await stopGroupOf(record, record.pgid))) {
      logger.warn({ job: record.job, run: record.id, pgid: record.pgid }, "stopped git's housekeeping left running by a daemon that died after the run");
    }
    forgetHousekeeping(record);
    await saveOrLog(record);
  }

  const running = records.filter((candidate) => candidate.status === 'running');
  // A command whose group the record does not name yet (the daemon died between its start and
  // the save of its group, a millisecond or so) is found by the run id in its environment, among
  // the processes of the daemon's user and of the job's `run_as` user.
  const daemonUser = process.getuid?.() ?? -1;
  const unnamed = await groupsCarrying(
    'DEPLOYHOOK_RUN_ID',
    new Map(running.filter((record) => record.commandGroup !== true).map((record) => [record.id, new Set([daemonUser, options.job(record.job)?.runAs?.uid ?? daemonUser])])),
  );
  for (const record of running) {
    if (record.pgid !== undefined && (await stopGroupOf(record, record.pgid))) {
      logger.warn({ job: record.job, run: record.id, pgid: record.pgid }, 'stopped processes left by a run the daemon died in');
    }
    for (const { pgid, leaderStart } of unnamed.get(record.id) ?? []) {
      // Found in this boot, before the stops above (each may wait out a kill grace): a leader
      // that was gone then and is there now is a reused pid, another program's, and is refused.
      if (await stopOrphanGroup(pgid, leaderStart ?? LEADER_GONE, killGraceOf(record))) {
        logger.warn({ job: record.job, run: record.id, pgid }, 'stopped the command of a run the daemon died in before it could record its process group');
      }
    }
    // Its log has no end: the output the cap kept aside goes in, and a line on what happened.
    await closeCrashedLog(record.logPath).catch((error: unknown) => logger.error({ job: record.job, run: record.id, err: error }, 'could not end the log of a run the daemon died in'));
    record.status = 'interrupted';
    record.reason = 'the daemon stopped while this run was in progress; the run is repeated';
    record.finishedAt = now().toISOString();
    // A full disk must not stop the daemon from starting: the record stays as it is on disk, and is recovered again next time.
    await saveEnded(record);
    result.interrupted += 1;
  }

  const isWaiting = (record: RunRecord) => record.status === 'queued' || (record.status === 'interrupted' && record.retriedBy === undefined && record.supersededBy === undefined);
  // Oldest first (run ids grow with each run queued, whatever the clock did), so that when a
  // job has several, the newest is the one left pending.
  const waiting = records.filter(isWaiting).sort((a, b) => a.id.localeCompare(b.id));
  // A job runs one run at a time, the newest, so a record still waiting on disk can be a save
  // that failed at the time (a full disk), and must not deploy its older commit after a newer
  // one. A queued run was superseded once a newer one left the line (it started, or ended
  // without starting: queued after it, it superseded it); an interrupted one was over once a
  // newer one started (runs queued while it ran say nothing of it).
  const newest = (counts: (record: RunRecord) => boolean) => {
    const byJob = new Map<string, RunRecord>();
    for (const record of records) {
      const known = byJob.get(record.job);
      if (!isWaiting(record) && counts(record) && (known === undefined || record.id > known.id)) byJob.set(record.job, record);
    }
    return byJob;
  };
  // A run superseded by an older one (a repeat that an earlier recovery queued after a run
  // waiting then) never stood in line before that one: it says nothing of it.
  const newestGone = newest((record) => !(record.status === 'superseded' && record.supersededBy !== undefined && record.supersededBy < record.id));
  const newestStarted = newest((record) => record.startedAt !== undefined);
  const overtaken = (record: RunRecord) => {
    const newer = (record.status === 'queued' ? newestGone : newestStarted).get(record.job);
    return newer !== undefined && newer.id > record.id ? newer : undefined;
  };
  // The newest queued run of each job that goes back in line: an interrupted run older than it
  // is not repeated, since that run, queued after it, deploys next (and a repeat, queued now
  // with a newer id, would wrongly supersede it).
  const resumed = new Map<string, RunRecord>();
  for (const record of waiting) if (record.status === 'queued' && overtaken(record) === undefined && options.job(record.job)) resumed.set(record.job, record);
  for (const record of waiting) {
    const queuedAfter = resumed.get(record.job);
    const newer = overtaken(record) ?? (record.status === 'interrupted' && queuedAfter !== undefined && queuedAfter.id > record.id ? queuedAfter : undefined);
    if (newer !== undefined) {
      const ends = record.status === 'queued';
      if (ends) Object.assign(record, { status: 'superseded', supersededBy: newer.id, reason: `superseded by run ${newer.id}, which came after it`, finishedAt: now().toISOString() } satisfies Partial<RunRecord>);
      else Object.assign(record, { supersededBy: newer.id, reason: `the daemon stopped while this run was in progress; not repeated: run ${newer.id} came after it and took its place` } satisfies Partial<RunRecord>);
      logger.warn({ job: record.job, run: record.id, newer: newer.id }, 'a recovered run is older than a run that came after it; it is not run');
      // An interrupted one was counted when it became interrupted: above, or by the daemon that stopped it.
      if (ends) await saveEnded(record);
      else await saveOrLog(record);
      result.skipped += 1;
      continue;
    }
    const job = options.job(record.job);
    if (!job) {
      logger.warn({ job: record.job, run: record.id }, 'a recovered run belongs to a job that is no longer configured; it is not run');
      if (record.status === 'queued') {
        Object.assign(record, { status: 'cancelled', reason: `job ${record.job} is no longer in the config`, finishedAt: now().toISOString() } satisfies Partial<RunRecord>);
        await saveEnded(record);
      }
      result.skipped += 1;
      continue;
    }
    if (record.status === 'queued') {
      queue.restore(record);
      result.resumed += 1;
      continue;
    }
    try {
      const retry = await queue.enqueue(job, {
        trigger: { ...record.trigger, type: 'recovery', retryOf: record.id },
        repo: record.repo,
        ref: record.ref,
        ...(record.branch !== undefined ? { branch: record.branch } : {}),
        ...(record.tag !== undefined ? { tag: record.tag } : {}),
        // A rollback cut short is repeated as the same rollback, not as a deploy of the tip.
        ...(record.exact ? { exact: true } : {}),
        sha: record.sha,
        before: record.before,
        ...(record.source !== undefined ? { source: record.source } : {}),
        event: await store.readEvent(record).catch(() => Buffer.from('{}')),
      });
      record.retriedBy = retry.id;
      await saveOrLog(record);
      result.retried += 1;
    } catch (error) {
      // Disk full: the interrupted run stays unrepeated on disk and is picked up at the next start.
      logger.error({ job: record.job, run: record.id, err: error }, 'could not queue the repeat of an interrupted run');
    }
  }
  logger.info(result, 'recovered runs');
  return result;
}
