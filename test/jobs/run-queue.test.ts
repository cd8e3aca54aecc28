import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { JobConfig } from '../../src/config/types.js';
import { type ExecuteRun, RunQueue, type RunRequest } from '../../src/jobs/run-queue.js';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { RunStore } from '../../src/store/run-store.js';
import { readRun, runsOf } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const job = { name: 'app' } as JobConfig;

function request(sha: string): RunRequest {
  return { trigger: { type: 'webhook', provider: 'github', delivery: sha.slice(0, 8), pusher: 'test' }, repo: 'acme/app', ref: 'refs/heads/main', branch: 'main', sha, before: '0'.repeat(40), event: Buffer.from('{}') };
}

/** A real store whose writes of a commit wait until let through, and may then fail once: the slow or failing disk of a race. */
class GatedStore extends RunStore {
  readonly #gates = new Map<string, { open: Promise<void>; fail: boolean }>();

  constructor(stateDir: string) {
    super(stateDir, join(stateDir, '..', 'logs'));
  }

  /** Holds the next write of `sha` until the returned function is called; with `fail`, that write then fails. */
  gate(sha: string, fail = false): () => void {
    let release: () => void = () => undefined;
    const open = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#gates.set(sha, { open, fail });
    return release;
  }

  override async create(record: RunRecord, event: Buffer): Promise<void> {
    const gate = this.#gates.get(record.sha);
    this.#gates.delete(record.sha);
    if (gate !== undefined) {
      await gate.open;
      if (gate.fail) throw new Error(`disk full writing ${record.sha.slice(0, 1)}`);
    }
    await super.create(record, event);
  }
}

/** A queue of the one job `app`, running its runs with `execute`. */
function oneJobQueue(store: RunStore, execute: ExecuteRun): RunQueue {
  return new RunQueue({ store, job: () => job, maxParallel: 4, logger: pino({ level: 'silent' }), execute });
}

describe('the run queue', () => {
  it('lets the later arrival win when the earlier one finishes writing last, even once the later one runs', async () => {
    const dir = await tempDir();
    const older = 'a'.repeat(40);
    const newer = 'b'.repeat(40);
    const store = new GatedStore(join(dir, 'state'));
    const release = store.gate(older);
    const executed: string[] = [];
    let finishRun: () => void = () => undefined;
    const queue = oneJobQueue(store, async (run) => {
      executed.push(run.sha);
      await new Promise<void>((resolve) => {
        finishRun = resolve;
      });
      run.status = 'succeeded';
      await store.save(run);
      return run;
    });

    const first = queue.enqueue(job, request(older));
    const second = await queue.enqueue(job, request(newer));
    expect(queue.snapshot('app').running?.id).toBe(second.id);
    release();
    const late = await first;
    expect(late).toMatchObject({ status: 'superseded', supersededBy: second.id });
    finishRun();
    await queue.whenIdle();
    expect(executed).toEqual([newer]);
    expect(await readRun(join(dir, 'state'), 'app', late.id)).toMatchObject({ status: 'superseded', supersededBy: second.id });
  });

  it.each([
    { what: 'the same checkout, as after a reload that renamed the job', other: (app: string) => app, waits: true },
    { what: 'a checkout inside it, as after a reload that moved one', other: (app: string) => join(app, 'sub'), waits: true },
    { what: 'a checkout around it', other: (app: string) => join(app, '..'), waits: true },
    { what: 'a checkout beside it whose name starts the same', other: (app: string) => `${app}-2`, waits: false },
  ])("a job's run in $what waits for another job's run there: $waits", async ({ other, waits }) => {
    const dir = await tempDir();
    const store = new RunStore(join(dir, 'state'), join(dir, 'logs'));
    await store.loadAll();
    const app = join(dir, 'checkouts', 'app');
    const jobs: Record<string, JobConfig> = {
      web: { name: 'web', remote: '/srv/git/app.git', checkout: app } as JobConfig,
      web2: { name: 'web2', remote: '/srv/git/app.git', checkout: other(app) } as JobConfig,
    };
    const finish = new Map<string, () => void>();
    const started: string[] = [];
    const queue = new RunQueue({
      store,
      job: (name) => jobs[name],
      maxParallel: 4,
      logger: pino({ level: 'silent' }),
      execute: async (run) => {
        started.push(run.job);
        await new Promise<void>((resolve) => finish.set(run.job, resolve));
        run.status = 'succeeded';
        await store.save(run);
        return run;
      },
    });

    await queue.enqueue(jobs.web as JobConfig, request('a'.repeat(40)));
    const second = await queue.enqueue(jobs.web2 as JobConfig, request('b'.repeat(40)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    if (waits) {
      expect(started).toEqual(['web']);
      expect(queue.snapshot('web2').running).toBeUndefined();
      expect(queue.snapshot('web2').pending?.id).toBe(second.id);
      finish.get('web')?.();
      await until('the other job to start', () => started.length === 2);
      expect(started).toEqual(['web', 'web2']);
    } else {
      expect(started).toEqual(['web', 'web2']);
      finish.get('web')?.();
    }
    finish.get('web2')?.();
    await queue.whenIdle();
  });
});

describe('a push of the waiting run’s commit', () => {
  /** A queue whose runs of its one job last until `finish()`, with a run of `a` running and one of `sha` waiting. */
  async function waitingFor(sha: string, store: RunStore) {
    let open = false;
    const held: Array<() => void> = [];
    const queue = oneJobQueue(store, async (run) => {
      if (!open) await new Promise<void>((resolve) => held.push(resolve));
      run.status = 'succeeded';
      await store.save(run);
      return run;
    });
    const running = await queue.enqueue(job, request('a'.repeat(40)));
    const waiting = await queue.enqueue(job, request(sha));
    expect(queue.snapshot('app')).toEqual({ running, pending: waiting });
    const finish = async () => {
      open = true;
      held.splice(0).forEach((resolve) => resolve());
      await queue.whenIdle();
    };
    return { queue, waiting, finish };
  }

  it('joins it only when it is a webhook push of the same commit, ref, repository and host', async () => {
    const dir = await tempDir();
    const sha = 'b'.repeat(40);
    const { queue, waiting, finish } = await waitingFor(sha, new RunStore(join(dir, 'state'), join(dir, 'logs')));
    const same = request(sha);
    expect(queue.joinable(job, same)).toBe(waiting);
    expect(queue.joinable(job, request('c'.repeat(40)))).toBeUndefined();
    expect(queue.joinable(job, { ...same, ref: 'refs/heads/other' })).toBeUndefined();
    // After another previous commit (the branch made again at the same commit): the command and `paths` would see another `before`.
    expect(queue.joinable(job, { ...same, before: 'd'.repeat(40) })).toBeUndefined();
    expect(queue.joinable(job, { ...same, repo: 'acme/fork' })).toBeUndefined();
    expect(queue.joinable(job, { ...same, trigger: { ...same.trigger, provider: 'gitea' } })).toBeUndefined();
    expect(queue.joinable(job, { ...same, trigger: { ...same.trigger, type: 'manual' } })).toBeUndefined();
    expect(queue.joinable(job, { ...same, exact: true })).toBeUndefined();
    expect(queue.joinable(job, { ...same, source: 'alertmanager' })).toBeUndefined();
    // The running run's commit is not joined: its fetch may have come before this push.
    expect(queue.joinable(job, request('a'.repeat(40)))).toBeUndefined();
    await finish();
    expect(queue.joinable(job, same)).toBeUndefined();
  });

  it('queues a run of its own while a later arrival of another commit is being written', async () => {
    const dir = await tempDir();
    const sha = 'b'.repeat(40);
    const slow = 'c'.repeat(40);
    const store = new GatedStore(join(dir, 'state'));
    const release = store.gate(slow);
    const { queue, waiting, finish } = await waitingFor(sha, store);
    const later = queue.enqueue(job, request(slow));
    expect(queue.joinable(job, request(sha))).toBeUndefined();
    release();
    const record = await later;
    expect(waiting).toMatchObject({ status: 'superseded', supersededBy: record.id });
    await until('the superseded record on disk', async () => (await readRun(join(dir, 'state'), 'app', waiting.id)).status === 'superseded');
    expect(queue.joinable(job, request(slow))).toBe(record);
    await finish();
  });

  it('joins the latest arrival of its commit while that record is being written, once it is written', async () => {
    const dir = await tempDir();
    const slow = 'c'.repeat(40);
    const store = new GatedStore(join(dir, 'state'));
    const release = store.gate(slow);
    const { queue, waiting, finish } = await waitingFor('b'.repeat(40), store);
    const later = queue.enqueue(job, request(slow));
    const joining = queue.joinable(job, request(slow));
    expect(joining).toBeInstanceOf(Promise);
    // Nothing is joined before the record is on disk and in line.
    let settled = false;
    void Promise.resolve(joining).then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);
    release();
    const record = await later;
    expect(await joining).toBe(record);
    expect(queue.snapshot('app').pending).toBe(record);
    expect(waiting).toMatchObject({ status: 'superseded', supersededBy: record.id });
    await finish();
    // One run written for the commit, not one per push.
    const runs = await runsOf(join(dir, 'state'), 'app');
    expect(runs.map((run) => [run.sha[0], run.status])).toEqual([
      ['a', 'succeeded'],
      ['b', 'superseded'],
      ['c', 'succeeded'],
    ]);
  });

  it('is replaced with the run it joined when a later arrival of another commit comes', async () => {
    const dir = await tempDir();
    const slow = 'c'.repeat(40);
    const store = new GatedStore(join(dir, 'state'));
    const release = store.gate(slow);
    const { queue, finish } = await waitingFor('b'.repeat(40), store);
    const joinedRun = queue.enqueue(job, request(slow));
    const joining = queue.joinable(job, request(slow));
    const newer = await queue.enqueue(job, request('d'.repeat(40)));
    // The newest arrival is being written no more, and is of another commit: nothing to join.
    expect(queue.joinable(job, request(slow))).toBeUndefined();
    release();
    const record = await joinedRun;
    expect(await joining).toBe(record);
    expect(record).toMatchObject({ status: 'superseded', supersededBy: newer.id });
    expect(queue.snapshot('app').pending).toBe(newer);
    await finish();
  });

  it('joins the waiting run when only an earlier arrival is still being written, which it will supersede', async () => {
    const dir = await tempDir();
    const slow = 'c'.repeat(40);
    const store = new GatedStore(join(dir, 'state'));
    const release = store.gate(slow);
    const { queue, finish } = await waitingFor('b'.repeat(40), store);
    const earlier = queue.enqueue(job, request(slow));
    const latest = await queue.enqueue(job, request('d'.repeat(40)));
    expect(queue.joinable(job, request('d'.repeat(40)))).toBe(latest);
    expect(queue.joinable(job, request(slow))).toBeUndefined();
    release();
    expect(await earlier).toMatchObject({ status: 'superseded', supersededBy: latest.id });
    expect(queue.snapshot('app').pending).toBe(latest);
    await finish();
  });

  it('does not join the waiting run while an earlier arrival of another commit, now the latest, is still being written', async () => {
    const dir = await tempDir();
    const store = new GatedStore(join(dir, 'state'));
    const waitingSha = 'b'.repeat(40);
    const { queue, finish } = await waitingFor(waitingSha, store);
    const releaseOther = store.gate('c'.repeat(40));
    const releaseFailing = store.gate('d'.repeat(40), true);
    const other = queue.enqueue(job, request('c'.repeat(40)));
    const failing = queue.enqueue(job, request('d'.repeat(40)));
    releaseFailing();
    await expect(failing).rejects.toThrow('disk full');
    // The latest arrival failed; the one before it, of another commit, is still being written and must not win over this push.
    const pushed = queue.enqueueOrJoin(job, request(waitingSha));
    releaseOther();
    const admitted = await pushed;
    expect(admitted.joined).toBe(false);
    expect(await other).toMatchObject({ status: 'superseded', supersededBy: admitted.run.id });
    expect(queue.snapshot('app').pending).toBe(admitted.run);
    await finish();
  });

  it('queues a push whose joined record could not be written in that arrival\'s place, behind the arrivals after it', async () => {
    const dir = await tempDir();
    const store = new GatedStore(join(dir, 'state'));
    const { queue, finish } = await waitingFor('b'.repeat(40), store);
    const sha = 'c'.repeat(40);
    const releaseFailing = store.gate(sha, true);
    const failing = queue.enqueue(job, request(sha));
    const joining = queue.enqueueOrJoin(job, request(sha));
    const later = await queue.enqueue(job, request('d'.repeat(40)));
    releaseFailing();
    await expect(failing).rejects.toThrow('disk full');
    const admitted = await joining;
    expect(admitted.joined).toBe(false);
    expect(admitted.run).toMatchObject({ sha, status: 'superseded', supersededBy: later.id });
    expect(queue.snapshot('app').pending).toBe(later);
    await finish();
  });

  it('tells a push whether it joined a run or queued its own', async () => {
    const dir = await tempDir();
    const { queue, waiting, finish } = await waitingFor('b'.repeat(40), new RunStore(join(dir, 'state'), join(dir, 'logs')));
    expect(await queue.enqueueOrJoin(job, request('b'.repeat(40)))).toEqual({ run: waiting, joined: true });
    const own = await queue.enqueueOrJoin(job, request('c'.repeat(40)));
    expect(own.joined).toBe(false);
    expect(waiting).toMatchObject({ status: 'superseded', supersededBy: own.run.id });
    await finish();
  });

  it('needs a run of its own when the record it would join cannot be written', async () => {
    const dir = await tempDir();
    const store = new GatedStore(join(dir, 'state'));
    store.gate('c'.repeat(40), true)();
    const { queue, finish } = await waitingFor('b'.repeat(40), store);
    const failing = queue.enqueue(job, request('c'.repeat(40)));
    const joining = queue.joinable(job, request('c'.repeat(40)));
    await expect(failing).rejects.toThrow('disk full');
    expect(await joining).toBeUndefined();
    await finish();
  });
});
