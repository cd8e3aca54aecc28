import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeEntry } from '../../src/store/journal-frame.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { githubHeaders, githubPush, gitlabHeaders, gitlabPush } from '../helpers/payloads.js';
import { runFiles, runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'redelivery-secret-0123456789ab';
const OTHER_SECRET = 'redelivery-other-secret-0123456789';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

const job = (remote: string, extra: Record<string, unknown> = {}) => ({ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote, command: ['cat', 'v.txt'], ...extra });

describe('a delivery that arrives twice', () => {
  it('is answered 200 duplicate the second time, also after a restart, and queues nothing more', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'v.txt': '1\n' });
    const settings = { jobs: [job(remote.bare)] };
    hook = await startDaemon(dir, settings, { SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const headers = await githubHeaders(body, SECRET);

    const first = await hook.post('github', body, headers);
    expect(first.status).toBe(202);
    const again = await hook.post('github', body, headers);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ delivery: headers['x-github-delivery'], duplicate: true, runs: [] });

    await hook.stop();
    hook = await startDaemon(dir, settings, { SECRET });
    const afterRestart = await hook.post('github', body, headers);
    expect(afterRestart.json).toMatchObject({ duplicate: true });
    await hook.daemon.queue.whenIdle();
    expect(await runsOf(join(dir, 'state'), 'app')).toHaveLength(1);
  });

  it('tells GitHub hooks apart by hook id and GitLab deliveries by Idempotency-Key', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'v.txt': '1\n' });
    hook = await startDaemon(dir, { jobs: [job(remote.bare), { ...job(remote.bare), name: 'lab', provider: 'gitlab', repo: 'acme/lab' }] }, { SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const headers = await githubHeaders(body, SECRET);
    expect((await hook.post('github', body, headers)).status).toBe(202);
    expect((await hook.post('github', body, { ...headers, 'x-github-hook-id': '43' })).status).toBe(202);

    const labBody = JSON.stringify(gitlabPush({ repo: 'acme/lab', after: sha }));
    const labHeaders = { ...gitlabHeaders(SECRET), 'idempotency-key': 'retry-key-1' };
    expect((await hook.post('gitlab', labBody, labHeaders)).status).toBe(202);
    expect((await hook.post('gitlab', labBody, { ...labHeaders, 'x-gitlab-event-uuid': 'another-uuid' })).json).toMatchObject({ duplicate: true });
  });

  it('tells apart the GitLab hooks one push fires when all they send is the shared X-Gitlab-Event-UUID', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'v.txt': '1\n' });
    // A group hook and a project hook, each with the secret of its own job (GitLab before 17.4: no Idempotency-Key).
    const lab = { ...job(remote.bare), provider: 'gitlab', repo: 'acme/lab' };
    hook = await startDaemon(dir, { jobs: [{ ...lab, name: 'group' }, { ...lab, name: 'project', secret_env: 'OTHER_SECRET' }] }, { SECRET, OTHER_SECRET });
    const body = JSON.stringify(gitlabPush({ repo: 'acme/lab', after: sha }));
    const group = gitlabHeaders(SECRET);
    const project = { ...group, 'x-gitlab-token': OTHER_SECRET };
    const first = await hook.post('gitlab', body, group);
    const second = await hook.post('gitlab', body, project);
    expect([first.status, second.status]).toEqual([202, 202]);
    expect([first.json.runs, second.json.runs]).toMatchObject([[{ job: 'group' }], [{ job: 'project' }]]);
    // The same hook's redelivery is still known.
    expect((await hook.post('gitlab', body, project)).json).toMatchObject({ duplicate: true, runs: [] });
  });

  it('is still a duplicate after an upgrade from the layout with a file per delivery, whose files and journal are taken in and removed', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'v.txt': '1\n' });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const [placed, journaled, fresh] = await Promise.all([1, 2, 3].map(() => githubHeaders(body, SECRET)));
    const key = (headers: Record<string, string> | undefined) => `github:42:${headers?.['x-github-delivery'] ?? ''}`;
    const hash = (headers: Record<string, string> | undefined) => createHash('sha256').update(key(headers), 'utf8').digest('hex');
    // What an earlier version left: a record in place, and one only in its journal.
    const deliveries = join(dir, 'state', 'deliveries');
    const legacyJournal = join(dir, 'state', 'journal', 'deliveries');
    await mkdir(deliveries, { recursive: true });
    await mkdir(legacyJournal, { recursive: true });
    await writeFile(join(deliveries, `${hash(placed)}.json`), `${JSON.stringify({ key: key(placed), time: new Date().toISOString(), runs: ['01m8aaaaaaaaaaaaaaaaaaaaaa'] }, null, 2)}\n`);
    const entry = { op: 'create' as const, path: `${hash(journaled)}.json`, data: Buffer.from(JSON.stringify({ key: key(journaled), runs: [] })) };
    await writeFile(join(legacyJournal, '0000000000000001.journal'), encodeEntry(entry));

    hook = await startDaemon(dir, { jobs: [job(remote.bare)] }, { SECRET });
    expect((await hook.post('github', body, placed ?? {})).json).toMatchObject({ duplicate: true, runs: [] });
    expect((await hook.post('github', body, journaled ?? {})).json).toMatchObject({ duplicate: true, runs: [] });
    expect((await hook.post('github', body, fresh ?? {})).status).toBe(202);
    expect((await readdir(deliveries)).every((name) => /^\d{16}\.journal$/.test(name))).toBe(true);
    expect(await readdir(join(dir, 'state', 'journal'))).not.toContain('deliveries');

    await hook.stop();
    hook = await startDaemon(dir, { jobs: [job(remote.bare)] }, { SECRET });
    for (const headers of [placed, journaled, fresh]) expect((await hook.post('github', body, headers ?? {})).json).toMatchObject({ duplicate: true });
    await hook.daemon.queue.whenIdle();
    expect(await runsOf(join(dir, 'state'), 'app')).toHaveLength(1);
  });

  it('is not a duplicate when the first attempt could not be recorded', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'v.txt': '1\n' });
    hook = await startDaemon(dir, { jobs: [job(remote.bare)] }, { SECRET });
    await hook.stop();
    // The runs folder becomes a file: recording a run fails with ENOTDIR.
    const { rm, writeFile } = await import('node:fs/promises');
    await rm(join(dir, 'state', 'runs'), { recursive: true, force: true });
    await writeFile(join(dir, 'state', 'runs'), 'not a folder');
    hook = await startDaemon(dir, { jobs: [job(remote.bare)] }, { SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const headers = await githubHeaders(body, SECRET);
    const refused = await hook.post('github', body, headers);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    await rm(join(dir, 'state', 'runs'));
    const retried = await hook.post('github', body, headers);
    expect(retried.status).toBe(202);
  });
});

describe('a stale or redelivered old push', () => {
  it('deploys the tip of the branch, records both commits, and never rolls the branch back', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const old = await remote.commit({ 'v.txt': 'old\n' });
    const tip = await remote.commit({ 'v.txt': 'tip\n' });
    hook = await startDaemon(dir, { jobs: [job(remote.bare)] }, { SECRET });

    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: old }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    const [run] = reply.json.runs as Array<{ id: string }>;
    const record = await waitForRun(join(dir, 'state'), 'app', run?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', sha: old, deployedSha: tip });
    expect(await git(join(dir, 'state', 'checkouts', 'app'), 'rev-parse', 'HEAD')).toBe(tip);
    const log = await readFile(record.logPath, 'utf8');
    expect(log).toContain(`the branch has moved on since this push: deploying its tip ${tip}`);
    expect(log).toContain('tip\n');
  });
});

describe('retention', () => {
  it('keeps the last keep_runs runs of a job with their logs and payloads, and deletes older ones', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    hook = await startDaemon(dir, { keep_runs: 2, jobs: [job(remote.bare)] }, { SECRET });
    const ids: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      const sha = await remote.commit({ 'v.txt': `${i}\n` });
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
      const id = (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '';
      ids.push(id);
      await waitForRun(join(dir, 'state'), 'app', id);
    }
    await hook.daemon.queue.whenIdle();
    expect((await runsOf(join(dir, 'state'), 'app')).map((run) => run.id)).toEqual(ids.slice(2));
    expect((await readdir(join(dir, 'logs', 'app'))).sort()).toEqual(ids.slice(2).map((id) => `${id}.log`));
    expect((await runFiles(join(dir, 'state'), 'app')).filter((name) => name.endsWith('.event.json'))).toHaveLength(2);
  });

  it('removes superseded runs beyond keep_runs at once, while a run is still going', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const started = join(dir, 'started');
    const release = join(dir, 'release');
    const command = ['sh', '-c', `touch ${started}; while [ ! -e ${release} ]; do sleep 0.05; done`];
    hook = await startDaemon(dir, { keep_runs: 2, jobs: [job(remote.bare, { command })] }, { SECRET });
    const push = async (i: number) => {
      const sha = await remote.commit({ 'v.txt': `${i}\n` });
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      return ((await hook?.post('github', body, await githubHeaders(body, SECRET)))?.json.runs as Array<{ id: string }>)[0]?.id ?? '';
    };
    const running = await push(0);
    await until('the first run to start its command', async () => (await readdir(dir)).includes('started'));
    // Six more while it runs: each supersedes the one queued before it.
    const queued: string[] = [];
    for (let i = 1; i <= 6; i += 1) queued.push(await push(i));
    const state = join(dir, 'state');
    const expected = [running, ...queued.slice(-3)].sort();
    // The superseded runs beyond keep_runs go at once; the rest are put in place about a second later.
    await until('the runs on disk to be the running one, the queued one and the 2 newest superseded', async () => (await runsOf(state, 'app')).map((run) => run.id).sort().join() === expected.join(), 5_000);
    expect((await runsOf(state, 'app')).map((run) => run.status).sort()).toEqual(['queued', 'running', 'superseded', 'superseded']);
    expect((await runFiles(state, 'app')).filter((name) => name.endsWith('.event.json'))).toHaveLength(4);
    await writeFile(release, '');
    await hook.daemon.queue.whenIdle();
  });

  it('keeps the run of the commit that is deployed, even when keep_runs newer runs failed', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    hook = await startDaemon(dir, { keep_runs: 2, jobs: [job(remote.bare, { command: ['sh', '-c', 'test "$(cat v.txt)" = good'] })] }, { SECRET });
    const outcomes: string[] = [];
    for (const content of ['good', 'bad1', 'bad2', 'bad3']) {
      const sha = await remote.commit({ 'v.txt': `${content}\n` });
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
      outcomes.push((await waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '')).status);
    }
    await hook.daemon.queue.whenIdle();
    expect(outcomes).toEqual(['succeeded', 'failed', 'failed', 'failed']);
    expect((await runsOf(join(dir, 'state'), 'app')).map((run) => run.status)).toEqual(['succeeded', 'failed', 'failed']);
  });
});
