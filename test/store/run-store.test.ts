import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { encodeTime } from 'ulid';
import { RunStore } from '../../src/store/run-store.js';
import { queuedRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

async function recordOnDisk(stateDir: string, run: RunRecord): Promise<unknown> {
  return JSON.parse(await readFile(join(stateDir, 'runs', run.job, `${run.id}.json`), 'utf8'));
}

/** A store in a new state folder with `count` runs, each created and then saved with `change`. */
async function finishedRuns(count: number, change: Partial<RunRecord>) {
  const dir = await tempDir();
  const state = join(dir, 'state');
  const store = new RunStore(state, join(dir, 'logs'));
  await store.loadAll();
  const runs = Array.from({ length: count }, () => queuedRun(store));
  for (const run of runs) {
    await store.create(run, Buffer.from('{}'));
    Object.assign(run, change);
    await store.save(run);
  }
  return { dir, state, store, runs };
}

/** A store in a new state folder, with one queued run created. */
async function storeWithRun() {
  const dir = await tempDir();
  const state = join(dir, 'state');
  const store = new RunStore(state, join(dir, 'logs'));
  await store.loadAll();
  const run = queuedRun(store);
  await store.create(run, Buffer.from('{}'));
  return { dir, state, store, run };
}

/** A store in a new state folder whose journal's writes fail as on a full disk while `disk.full`. */
async function storeOnDisk() {
  const dir = await tempDir();
  const state = join(dir, 'state');
  const disk = { full: false };
  const store = new RunStore(state, join(dir, 'logs'), {
    write: (handle, frames) => (disk.full ? Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })) : handle.writev(frames)),
  });
  await store.loadAll();
  return { dir, state, store, disk };
}

describe('RunStore', () => {
  it("derives a run's paths under its job's folders, and refuses a job name or run id that could leave them", async () => {
    const dir = await tempDir();
    const store = new RunStore(join(dir, 'state'), join(dir, 'logs'));
    const id = store.newRunId();
    expect(store.eventFile('app', id)).toBe(join(dir, 'state', 'runs', 'app', `${id}.event.json`));
    expect(store.logPath('app', id)).toBe(join(dir, 'logs', 'app', `${id}.log`));
    // Checked every time, also for a job whose folders are already known.
    for (const hostile of ['../x', `${id}/../../x`, id.toUpperCase(), `${id}x`, '']) {
      expect(() => store.eventFile('app', hostile)).toThrow(/run id/);
      expect(() => store.logPath('app', hostile)).toThrow(/run id/);
    }
    for (const hostile of ['..', '../app', 'app/../../x', '.app', 'App', '']) {
      expect(() => store.eventFile(hostile, id)).toThrow(/job name/);
      expect(() => store.logPath(hostile, id)).toThrow(/job name/);
    }
  });

  it('answers for a new run as soon as create resolves, and puts its record and payload in place', async () => {
    const dir = await tempDir();
    const store = new RunStore(join(dir, 'state'), join(dir, 'logs'));
    await store.loadAll();
    const run = queuedRun(store);
    await store.create(run, Buffer.from('{"ref":"refs/heads/main"}'));
    expect(store.get(run.id)).toMatchObject({ id: run.id, status: 'queued' });
    expect((await store.readEvent(run)).toString()).toBe('{"ref":"refs/heads/main"}');
    await store.placeEvent(run);
    expect(await readFile(run.eventFile, 'utf8')).toBe('{"ref":"refs/heads/main"}');
    await store.place();
    expect(await recordOnDisk(join(dir, 'state'), run)).toMatchObject({ id: run.id, status: 'queued' });
  });

  it('saves a record whose save failed again after the next save that succeeds, and reports the failure until then', async () => {
    const { dir, state, store, disk } = await storeOnDisk();
    const [finished, other] = [queuedRun(store), queuedRun(store)];
    await store.create(finished, Buffer.from('{}'));
    await store.create(other, Buffer.from('{}'));
    disk.full = true;
    finished.status = 'succeeded';
    await expect(store.save(finished)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(store.lastFailure).toMatchObject({ during: 'save', error: { code: 'ENOSPC' } });
    disk.full = false;
    // A save of another record succeeds; the failed one is still unsaved until its own save is done.
    await store.save(other);
    await store.place();
    await until("the failed record's save to be made again", async () => (((await recordOnDisk(state, finished)) as RunRecord).status === 'succeeded'));
    await until('the failure to be over', () => store.lastFailure === undefined);
    await store.close();
    // From the journal, as after a restart: the record is final.
    const again = new RunStore(state, join(dir, 'logs'));
    const loaded = await again.loadAll();
    expect(loaded.records.find((record) => record.id === finished.id)?.status).toBe('succeeded');
    await again.close();
  });

  it('saves a record whose save failed again a few seconds later when nothing else is saved', async () => {
    const { state, store, disk } = await storeOnDisk();
    const run = queuedRun(store);
    await store.create(run, Buffer.from('{}'));
    disk.full = true;
    run.status = 'failed';
    await expect(store.save(run)).rejects.toMatchObject({ code: 'ENOSPC' });
    disk.full = false;
    await until('the failure to be over', () => store.lastFailure === undefined, 15_000);
    await store.place();
    expect(await recordOnDisk(state, run)).toMatchObject({ status: 'failed' });
    await store.close();
  });

  it('is ready again a few seconds after a new run could not be recorded, once the disk takes writes, with nothing else saved', async () => {
    const { store, disk } = await storeOnDisk();
    disk.full = true;
    await expect(store.create(queuedRun(store), Buffer.from('{}'))).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(store.lastFailure).toMatchObject({ during: 'save' });
    // Still full at the first retry: still not ready.
    await new Promise((resolve) => setTimeout(resolve, 5_500));
    expect(store.lastFailure).toMatchObject({ during: 'save' });
    disk.full = false;
    await until('the failure to be over', () => store.lastFailure === undefined, 15_000);
    await store.close();
  }, 30_000);

  it('gives new runs ids after the runs on disk, even when the clock is behind theirs', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const ahead = new RunStore(state, join(dir, 'logs'));
    await ahead.loadAll();
    // A run queued a day ahead of this clock, by a process whose clock was set forward.
    const future = { ...queuedRun(ahead), id: `${encodeTime(Date.now() + 86_400_000, 10).toLowerCase()}0000000000000000` };
    await ahead.create({ ...future, logPath: ahead.logPath('app', future.id), eventFile: ahead.eventFile('app', future.id) }, Buffer.from('{}'));
    await ahead.close();
    const store = new RunStore(state, join(dir, 'logs'));
    await store.loadAll();
    const [first, second] = [store.newRunId(), store.newRunId()];
    expect(first > future.id).toBe(true);
    expect(second > first).toBe(true);
    await store.close();

    // A record whose id is no ULID (edited by hand) would order nothing, or everything after it: it is set aside.
    const odd = { ...queuedRun(store), id: 'zzzzzzzzzzzzzzzzzzzzzzzzzz' };
    await writeFile(join(state, 'runs', 'app', `${odd.id}.json`), JSON.stringify(odd));
    const after = new RunStore(state, join(dir, 'logs'));
    const loaded = await after.loadAll();
    expect(loaded.records.map((record) => record.id)).not.toContain(odd.id);
    expect(loaded.problems).toEqual([expect.stringContaining(`${odd.id}.json: not a valid run record; moved aside`)]);
    const next = after.newRunId();
    expect(next > future.id).toBe(true);
    await after.close();
  });

  it('empties the journal on close, so that a restart has nothing to replay', async () => {
    const { dir, state, store, run } = await storeWithRun();
    run.status = 'succeeded';
    await store.save(run);
    expect(await readdir(join(state, 'journal', 'runs'))).toHaveLength(1);
    await store.close();
    expect(await readdir(join(state, 'journal', 'runs'))).toEqual([]);
    expect(await recordOnDisk(state, run)).toMatchObject({ status: 'succeeded' });
    expect((await new RunStore(state, join(dir, 'logs')).loadAll()).records.map((record) => record.status)).toEqual(['succeeded']);
  });

  it('recovers at start an acknowledged run whose files a power cut lost, from the journal', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const store = new RunStore(state, join(dir, 'logs'));
    await store.loadAll();
    const run = queuedRun(store);
    await store.create(run, Buffer.from('{"n":1}'));
    await store.place();
    // Renamed into place but not yet fsynced when the power went: gone, or empty.
    await rm(run.eventFile);
    await writeFile(join(state, 'runs', 'app', `${run.id}.json`), '');

    const restarted = new RunStore(state, join(dir, 'logs'));
    const loaded = await restarted.loadAll();
    expect(loaded.problems).toEqual([]);
    expect(loaded.records.map((record) => [record.id, record.status])).toEqual([[run.id, 'queued']]);
    expect(await readFile(run.eventFile, 'utf8')).toBe('{"n":1}');
    expect(await readdir(join(state, 'journal', 'runs'))).toEqual([]);
  });

  it('never rolls a record back at start: after a crash of the process, the newest save is what loads', async () => {
    const { dir, state, store, run } = await storeWithRun();
    run.status = 'running';
    run.startedAt = new Date().toISOString();
    run.pgid = 4242;
    await store.save(run);

    const loaded = await new RunStore(state, join(dir, 'logs')).loadAll();
    expect(loaded.records).toEqual([expect.objectContaining({ id: run.id, status: 'running', pgid: 4242 })]);
    expect(await recordOnDisk(state, run)).toMatchObject({ status: 'running', pgid: 4242 });
  });

  it('pages every job\'s runs newest first, after a start that loads them job by job and after retention', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const first = new RunStore(state, join(dir, 'logs'));
    await first.loadAll();
    // Jobs b and a take turns, so that loading folder a, then b, reads the ids out of order.
    const made: RunRecord[] = [];
    for (let i = 0; i < 6; i += 1) {
      const run = queuedRun(first, i % 2 === 0 ? 'b' : 'a');
      await first.create(run, Buffer.from('{}'));
      run.status = i === 4 ? 'failed' : 'succeeded';
      await first.save(run);
      made.push(run);
    }
    await first.close();
    const store = new RunStore(state, join(dir, 'logs'));
    await store.loadAll();
    const newestFirst = made.map((run) => run.id).reverse();
    const ids = (filter: { limit: number; before?: string | undefined; status?: RunRecord['status'] }) => store.list({ limit: filter.limit, ...(filter.before !== undefined ? { before: filter.before } : {}), ...(filter.status !== undefined ? { status: filter.status } : {}) }).map((run) => run.id);
    expect(ids({ limit: 10 })).toEqual(newestFirst);
    expect(ids({ limit: 2 })).toEqual(newestFirst.slice(0, 2));
    expect(ids({ limit: 2, before: newestFirst[1] })).toEqual(newestFirst.slice(2, 4));
    expect(ids({ limit: 10, status: 'failed' })).toEqual([made[4]?.id]);
    // New runs come after the loaded ones; runs retention removed are gone from the pages.
    const later = queuedRun(store, 'a');
    await store.create(later, Buffer.from('{}'));
    // b keeps its newest run (failed) and its newest that succeeded (what is deployed).
    expect(await store.prune('b', 1)).toBe(1);
    expect(ids({ limit: 10 })).toEqual([later.id, made[5]?.id, made[4]?.id, made[3]?.id, made[2]?.id, made[1]?.id]);
    expect(store.list({ job: 'b', limit: 10 }).map((run) => run.id)).toEqual([made[4]?.id, made[2]?.id]);
    expect(store.latest('b', 'succeeded')?.id).toBe(made[2]?.id);
    expect(store.latest('a')?.id).toBe(later.id);
  });

  it('does not bring back at start the runs that retention removed', async () => {
    const dir = await tempDir();
    const state = join(dir, 'state');
    const store = new RunStore(state, join(dir, 'logs'));
    await store.loadAll();
    const runs = [queuedRun(store), queuedRun(store), queuedRun(store)];
    for (const run of runs) {
      await store.create(run, Buffer.from('{}'));
      run.status = 'succeeded';
      await store.save(run);
    }
    expect(await store.prune('app', 1)).toBe(2);

    const loaded = await new RunStore(state, join(dir, 'logs')).loadAll();
    expect(loaded.records.map((record) => record.id)).toEqual([runs[2]?.id]);
    expect((await readdir(join(state, 'runs', 'app'))).sort()).toEqual([`${runs[2]?.id}.event.json`, `${runs[2]?.id}.json`]);
  });

  it("removes with a run's log the spill files a daemon that died during the run left beside it", async () => {
    const { dir, store, runs } = await finishedRuns(2, { status: 'interrupted', startedAt: new Date().toISOString() });
    await mkdir(join(dir, 'logs', 'app'), { recursive: true });
    for (const run of runs) {
      for (const file of [run.logPath, `${run.logPath}.tail-a`, `${run.logPath}.tail-b`]) await writeFile(file, 'output\n');
    }
    expect(await store.prune('app', 1)).toBe(1);
    const newest = runs[1]?.id ?? '';
    expect((await readdir(join(dir, 'logs', 'app'))).sort()).toEqual([`${newest}.log`, `${newest}.log.tail-a`, `${newest}.log.tail-b`]);
  });

  it('does not bring back in memory a run that retention removed while a save of it was on its way', async () => {
    const { dir, state, store, runs } = await finishedRuns(2, { status: 'superseded' });
    const [older] = runs;
    if (!older) throw new Error('expected two runs');
    // A late save (fan-out writing its outcome, say) of the run retention is about to remove.
    const saving = store.save({ ...older, reason: 'saved late' });
    expect(await store.prune('app', 1)).toBe(1);
    await saving;
    expect(store.get(older.id)).toBeUndefined();
    expect(store.list({ job: 'app', limit: 10 }).map((run) => run.id)).toEqual([runs[1]?.id]);
    // Nor does a save that comes after the removal write it back to disk.
    await store.save({ ...older, reason: 'saved later still' });
    await store.close();
    const loaded = await new RunStore(state, join(dir, 'logs')).loadAll();
    expect(loaded.records.map((record) => record.id)).toEqual([runs[1]?.id]);
  });
});
