import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { leftOutCount, parsedLines, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git, REPACK_EVERY_FETCH } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { isRunning, readPid } from '../helpers/processes.js';
import { readRun, runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'deploy-test-secret-0123456789';
const API_TOKEN = 'deploy-test-api-token-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

async function push(daemon: TestDaemon, repo: string, after: string, ref = 'refs/heads/main'): Promise<Array<{ id: string; job: string; joined?: true }>> {
  const body = JSON.stringify(githubPush({ repo, ref, after }));
  const reply = await daemon.post('github', body, await githubHeaders(body, SECRET));
  expect(reply.status).toBe(202);
  return reply.json.runs as Array<{ id: string; job: string; joined?: true }>;
}

/**
 * A daemon with one job, `name`, for the repository acme/<name>, whose command (after `first`,
 * shell words) waits until the file `release` exists; its remote has two commits.
 */
async function startHeldJob(name: string, first = ''): Promise<{ daemon: TestDaemon; state: string; release: string; commits: [string, string] }> {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const commits: [string, string] = [await remote.commit({ 'n.txt': '1\n' }), await remote.commit({ 'n.txt': '2\n' })];
  const release = join(dir, 'release');
  const command = ['sh', '-c', `${first}while [ ! -e ${release} ]; do sleep 0.05; done`];
  const daemon = await startDaemon(dir, { jobs: [{ name, provider: 'github', repo: `acme/${name}`, branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command }] }, { SECRET });
  hook = daemon;
  return { daemon, state: join(dir, 'state'), release, commits };
}

describe('a push to a matching branch', () => {
  it('deploys exactly that commit and writes the whole story to the run log', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'site.txt': 'v1\n' });
    const sha = await remote.commit({ 'site.txt': 'v2\n', 'deploy/apply.sh': 'echo "applying $(cat ../site.txt)"\n' });
    hook = await startDaemon(dir, {
      jobs: [{ name: 'site', provider: 'github', repo: 'acme/site', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, workdir: 'deploy', command: ['sh', 'apply.sh'] }],
    }, { SECRET });

    const [run] = await push(hook, 'acme/site', sha);
    const record = await waitForRun(join(dir, 'state'), 'site', run?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', exitCode: 0, sha, deployedSha: sha, logPath: join(dir, 'logs', 'site', `${run?.id}.log`) });

    const checkout = join(dir, 'state', 'checkouts', 'site');
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
    expect(await readFile(join(checkout, 'site.txt'), 'utf8')).toBe('v2\n');

    const log = await readFile(record.logPath, 'utf8');
    expect(log).toContain(`[deployhook] run ${run?.id} of job site`);
    expect(log).toContain('[deployhook] repo:     acme/site');
    expect(log).toContain('[deployhook] ref:      refs/heads/main');
    expect(log).toContain(`[deployhook] commit:   ${sha}`);
    expect(log).toMatch(/\[deployhook\] delivery: 00000000-0000-4000-8000-\d+ \(github, pushed by Codertocat\)/);
    expect(log).toMatch(/\[deployhook\] started: {2}\d{4}-\d\d-\d\dT/);
    expect(log).toContain('applying v2');
    expect(log.trimEnd().split('\n').at(-1)).toMatch(/^\[deployhook\] finished: succeeded, exit code 0, after \d/);
  });

  it('refuses a workdir the repository made a link out of the checkout, and takes one to a folder inside it', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const outside = await tempDir();
    await remote.commit({ 'inner/apply.sh': 'echo inside\n' });
    await symlink(outside, join(remote.work, 'deploy'));
    await symlink('inner', join(remote.work, 'linked'));
    await git(remote.work, 'add', '--', 'deploy', 'linked');
    const sha = await remote.commit({}, 'links');
    const job = { provider: 'github', repo: 'acme/site', branches: ['main'], secret_env: 'SECRET', remote: remote.bare };
    hook = await startDaemon(dir, {
      jobs: [
        { ...job, name: 'out', workdir: 'deploy', command: ['sh', '-c', 'pwd > ran.txt'] },
        { ...job, name: 'in', workdir: 'linked', command: ['sh', 'apply.sh'] },
      ],
    }, { SECRET });

    const runs = await push(hook, 'acme/site', sha);
    const out = await waitForRun(join(dir, 'state'), 'out', runs.find((run) => run.job === 'out')?.id ?? '');
    expect(out).toMatchObject({ status: 'failed', reason: `expected the workdir deploy to be a folder in commit ${sha}, but it is a link out of the checkout` });
    expect(await readdir(outside)).toEqual([]);
    const inner = await waitForRun(join(dir, 'state'), 'in', runs.find((run) => run.job === 'in')?.id ?? '');
    expect(inner).toMatchObject({ status: 'succeeded' });
    expect(await readFile(inner.logPath, 'utf8')).toContain('inside\n');
  });

  it('gives the command the run as environment variables and nothing else of the daemon', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    process.env.DEPLOYHOOK_TEST_LEAK = 'should-not-be-seen';
    hook = await startDaemon(dir, {
      jobs: [{ name: 'envy', provider: 'github', repo: 'acme/envy', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, env: { STAGE: 'production' }, command: ['sh', '-c', 'env | sort; cat "$DEPLOYHOOK_EVENT_FILE" > event-copy.json'] }],
    }, { SECRET });
    delete process.env.DEPLOYHOOK_TEST_LEAK;
    const body = JSON.stringify(githubPush({ repo: 'acme/envy', after: sha }));
    const headers = await githubHeaders(body, SECRET);
    const reply = await hook.post('github', body, headers);
    const [run] = reply.json.runs as Array<{ id: string }>;
    const record = await waitForRun(join(dir, 'state'), 'envy', run?.id ?? '');
    const log = await readFile(record.logPath, 'utf8');
    const env = new Map(log.split('\n').filter((line) => /^[A-Z_]+=/.test(line)).map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
    expect(Object.fromEntries([...env].filter(([name]) => name.startsWith('DEPLOYHOOK_')))).toEqual({
      DEPLOYHOOK_JOB: 'envy',
      DEPLOYHOOK_RUN_ID: run?.id,
      DEPLOYHOOK_PROVIDER: 'github',
      DEPLOYHOOK_REPO: 'acme/envy',
      DEPLOYHOOK_REF: 'refs/heads/main',
      DEPLOYHOOK_BRANCH: 'main',
      DEPLOYHOOK_TAG: '',
      DEPLOYHOOK_SHA: sha,
      DEPLOYHOOK_BEFORE: '0'.repeat(40),
      DEPLOYHOOK_DELIVERY: headers['x-github-delivery'],
      DEPLOYHOOK_PUSHER: 'Codertocat',
      DEPLOYHOOK_TRIGGER: 'webhook',
      DEPLOYHOOK_SOURCE: '',
      DEPLOYHOOK_EVENT_FILE: record.eventFile,
    });
    expect(env.get('STAGE')).toBe('production');
    expect(env.get('PATH')).toBe(process.env.PATH);
    expect(env.has('SECRET')).toBe(false);
    expect(env.has('VITEST')).toBe(false);
    expect(env.has('DEPLOYHOOK_TEST_LEAK')).toBe(false);
    expect(await readFile(join(dir, 'state', 'checkouts', 'envy', 'event-copy.json'), 'utf8')).toBe(body);
  });

  it('masks a secret the daemon knows when the command prints it', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    await writeFile(join(dir, 'hook.secret'), `${SECRET}\n`);
    hook = await startDaemon(dir, {
      jobs: [{ name: 'leaky', provider: 'github', repo: 'acme/leaky', branches: ['main'], secret_file: 'hook.secret', remote: remote.bare, command: ['cat', join(dir, 'hook.secret')] }],
    });
    const [run] = await push(hook, 'acme/leaky', sha);
    const record = await waitForRun(join(dir, 'state'), 'leaky', run?.id ?? '');
    const log = await readFile(record.logPath, 'utf8');
    expect(log).toContain('***');
    expect(log).not.toContain(SECRET);
  });
});

describe("git's housekeeping in the checkout", () => {
  async function setup(gitconfig: string, more: Record<string, unknown> = {}) {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    // git reads this HOME's config.
    const home = join(dir, 'home');
    await mkdir(home);
    await writeFile(join(home, '.gitconfig'), gitconfig);
    const settings = { ...more, jobs: [{ name: 'site', provider: 'github', repo: 'acme/site', branches: ['main'], secret_env: 'SECRET', remote: `file://${remote.bare}`, command: ['true'] }] };
    const checkout = join(dir, 'state', 'checkouts', 'site');
    const packs = async () => Number(/^packs: (\d+)$/m.exec(await git(checkout, 'count-objects', '-v'))?.[1]);
    const start = async () => {
      hook = await startDaemon(dir, settings, { SECRET, HOME: home, API_TOKEN });
    };
    const deploy = async (sha: string) => {
      const [run] = await push(hook as TestDaemon, 'acme/site', sha);
      const record = await waitForRun(join(dir, 'state'), 'site', run?.id ?? '');
      expect(record).toMatchObject({ status: 'succeeded', deployedSha: sha });
      // The record is final before the housekeeping starts; the job's next run waits for it.
      await hook?.daemon.queue.whenIdle();
      return (hook as TestDaemon).logLines.filter((line) => line.includes(`"run":"${run?.id ?? ''}"`) && line.includes('housekeeping')).map((line) => JSON.parse(line) as Record<string, unknown>);
    };
    return { dir, home, remote, packs, start, deploy };
  }

  it('runs after the first run since the start, then waits; the fetch leaves it out', async () => {
    // git's default would do the repack in the background.
    const { dir, remote, packs, start, deploy } = await setup(REPACK_EVERY_FETCH);
    await start();

    expect(await deploy(await remote.commit({ 'site.txt': 'v1\n' }))).toMatchObject([{ level: 30, msg: "git's housekeeping in the checkout done" }]);
    expect(await packs()).toBe(1);
    // Ended: the record names no group of the housekeeping's for a later start to stop.
    expect((await runsOf(join(dir, 'state'), 'site')).at(-1)).not.toHaveProperty('housekeeping');
    expect(await deploy(await remote.commit({ 'site.txt': 'v2\n' }))).toEqual([]);
    expect(await packs()).toBe(2);

    await hook?.stop();
    await start();
    expect(await deploy(await remote.commit({ 'site.txt': 'v3\n' }))).toMatchObject([{ level: 30, msg: "git's housekeeping in the checkout done" }]);
    expect(await packs()).toBe(1);
  });

  it('cannot cancel the run it follows, and stops at once when the daemon shuts down', async () => {
    // git runs the pre-auto-gc hook before it repacks: this one holds the housekeeping up.
    const { dir, home, remote, packs, start, deploy } = await setup('', { shutdown_timeout: '1s', api: { token_env: 'API_TOKEN' } });
    const hooks = join(home, 'hooks');
    await mkdir(hooks);
    await writeFile(join(hooks, 'pre-auto-gc'), `#!/bin/sh\necho $$ > ${join(dir, 'housekeeping.pid')}\nexec sleep 60\n`, { mode: 0o755 });
    await writeFile(join(home, '.gitconfig'), `${REPACK_EVERY_FETCH}[core]\n\thooksPath = ${hooks}\n`);
    // One run to clone (one pack, nothing to do), then a restart, so the next run's housekeeping has two packs.
    await start();
    await deploy(await remote.commit({ 'site.txt': 'v1\n' }));
    await hook?.stop();
    await start();
    const [run] = await push(hook as TestDaemon, 'acme/site', await remote.commit({ 'site.txt': 'v2\n' }));
    let pid = 0;
    await until("git's housekeeping hook to write its pid", async () => {
      pid = await readPid(dir, 'housekeeping.pid').catch(() => 0);
      return Number.isInteger(pid) && pid > 0;
    });
    expect(isRunning(pid)).toBe(true);

    const authorization = { authorization: `Bearer ${API_TOKEN}` };
    const cancel = await fetch(`${hook?.url ?? ''}/api/runs/${run?.id ?? ''}/cancel`, { method: 'POST', headers: authorization });
    expect(cancel.status).toBe(409);
    expect(((await cancel.json()) as { error: string }).error).toBe(`run ${run?.id ?? ''} is succeeded: only queued or running runs can be cancelled`);
    expect(await waitForRun(join(dir, 'state'), 'site', run?.id ?? '')).toMatchObject({ status: 'succeeded' });
    // The job shows no run in progress meanwhile.
    const { jobs } = (await (await fetch(`${hook?.url ?? ''}/api/jobs`, { headers: authorization })).json()) as { jobs: Array<Record<string, unknown>> };
    expect(jobs).toMatchObject([{ name: 'site', state: 'idle', running: null, lastRun: { id: run?.id, status: 'succeeded' } }]);

    await hook?.stop();
    const lines = parsedLines(hook as TestDaemon);
    expect(lines.filter((line) => line['msg'] === "git's housekeeping in the checkout did not finish; the next run tries again")).toMatchObject([{ level: 40, reason: 'it was stopped' }]);
    // The shutdown did not wait for shutdown_timeout: nothing was left to interrupt.
    expect(lines.filter((line) => String(line['msg']).startsWith('runs still in progress'))).toEqual([]);
    expect(isRunning(pid)).toBe(false);
    expect(await packs()).toBe(2);
  });

  it("removes the commit-graph's lock a stopped housekeeping left, and says so in the daemon's log", async () => {
    const { dir, remote, packs, start, deploy } = await setup(REPACK_EVERY_FETCH);
    await start();
    await deploy(await remote.commit({ 'site.txt': 'v1\n' }));
    await hook?.stop();
    await writeFile(join(dir, 'state', 'checkouts', 'site', '.git', 'objects', 'info', 'commit-graph.lock'), '');
    await start();

    expect(await deploy(await remote.commit({ 'site.txt': 'v2\n' }))).toMatchObject([
      { level: 40, msg: "git's housekeeping: removed the stale lock .git/objects/info/commit-graph.lock left by an interrupted run" },
      { level: 30, msg: "git's housekeeping in the checkout done" },
    ]);
    expect(await packs()).toBe(1);
  });

  it('logs a failure as a warning, leaves the run as it ended, and tries again on the next run', async () => {
    const { remote, start, deploy } = await setup('[maintenance "gc"]\n\tenabled = maybe\n');
    await start();

    for (const version of ['v1', 'v2']) {
      const [line, ...more] = await deploy(await remote.commit({ 'site.txt': `${version}\n` }));
      expect(more).toEqual([]);
      expect(line).toMatchObject({ level: 40, msg: "git's housekeeping in the checkout did not finish; the next run tries again" });
      expect(line?.['reason']).toMatch(/^Git step "housekeeping" failed \(git maintenance\):\n.*bad boolean config value 'maybe' for 'maintenance\.gc\.enabled'/s);
    }
  });
});

describe('runs that cannot succeed', () => {
  it('fails with a message naming the branch and the commit when the branch is not on the remote', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { jobs: [{ name: 'ghost', provider: 'github', repo: 'acme/ghost', branches: ['**'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] }] }, { SECRET });
    const missing = 'f'.repeat(40);
    const [run] = await push(hook, 'acme/ghost', missing, 'refs/heads/never-pushed');
    const record = await waitForRun(join(dir, 'state'), 'ghost', run?.id ?? '');
    expect(record.status).toBe('failed');
    expect(record.reason).toContain(missing);
    expect(record.reason).toMatch(/Expected the branch "never-pushed" on the remote .*, but it is not there/);
    expect(await readFile(record.logPath, 'utf8')).toContain(missing);
  });

  it('records a failing command with its exit code', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { jobs: [{ name: 'broken', provider: 'github', repo: 'acme/broken', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['sh', '-c', 'echo about to fail >&2; exit 3'] }] }, { SECRET });
    const [run] = await push(hook, 'acme/broken', sha);
    const record = await waitForRun(join(dir, 'state'), 'broken', run?.id ?? '');
    expect(record).toMatchObject({ status: 'failed', exitCode: 3, reason: 'the command exited with code 3' });
    const log = await readFile(record.logPath, 'utf8');
    expect(log).toContain('about to fail');
    expect(log).toContain('[deployhook] finished: failed, exit code 3');
  });

  it('times out a command and its grandchild even when both ignore SIGTERM', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const pidFile = join(dir, 'grandchild.pid');
    const script = `trap '' TERM; sh -c 'trap "" TERM; echo $$ > ${pidFile}; while :; do sleep 1; done' & while :; do sleep 1; done`;
    hook = await startDaemon(dir, { jobs: [{ name: 'stuck', provider: 'github', repo: 'acme/stuck', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, timeout: '2s', kill_grace: '1s', command: ['sh', '-c', script] }] }, { SECRET });
    const [run] = await push(hook, 'acme/stuck', sha);
    const record = await waitForRun(join(dir, 'state'), 'stuck', run?.id ?? '');
    expect(record.status).toBe('timed_out');
    expect(record.reason).toBe('the run exceeded its timeout of 2.0s');
    const grandchild = Number(await readFile(pidFile, 'utf8'));
    expect(grandchild).toBeGreaterThan(0);
    expect(isRunning(grandchild)).toBe(false);
    expect(await readFile(record.logPath, 'utf8')).toContain('[deployhook] finished: timed_out');
  });
});

describe('a burst of pushes to one job', () => {
  it('never overlaps runs, supersedes what waited, and ends on the newest commit', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const commits: string[] = [];
    for (let i = 0; i < 8; i += 1) commits.push(await remote.commit({ 'n.txt': `${i}\n` }));
    const trace = join(dir, 'trace.txt');
    const command = ['sh', '-c', `echo "start $DEPLOYHOOK_SHA" >> ${trace}; sleep 0.4; echo "end $DEPLOYHOOK_SHA" >> ${trace}`];
    hook = await startDaemon(dir, { jobs: [{ name: 'busy', provider: 'github', repo: 'acme/busy', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command }] }, { SECRET });

    const acknowledged: string[] = [];
    for (const sha of commits) acknowledged.push(...(await push(hook, 'acme/busy', sha)).map((run) => run.id));
    expect(acknowledged).toHaveLength(commits.length);
    await hook.daemon.queue.whenIdle();

    const runs = await runsOf(join(dir, 'state'), 'busy');
    expect(runs.map((run) => run.id).sort()).toEqual([...acknowledged].sort());
    const executed = runs.filter((run) => run.status === 'succeeded');
    const superseded = runs.filter((run) => run.status === 'superseded');
    expect(executed.length + superseded.length).toBe(commits.length);
    expect(executed.length).toBeLessThanOrEqual(3);
    expect(executed.at(-1)?.deployedSha).toBe(commits.at(-1));
    for (const run of superseded) expect(run.supersededBy).toMatch(/^[0-9a-z]{26}$/);

    const lines = (await readFile(trace, 'utf8')).trim().split('\n');
    lines.forEach((line, index) => expect(line.startsWith(index % 2 === 0 ? 'start ' : 'end ')).toBe(true));
    expect(await git(join(dir, 'state', 'checkouts', 'busy'), 'rev-parse', 'HEAD')).toBe(commits.at(-1));
  });

  it("lets a push of the waiting run's own commit join it, where a push of the running commit queues a run", async () => {
    const { daemon, state, release, commits: [first, second] } = await startHeldJob('held', 'echo "start $DEPLOYHOOK_SHA"; ');
    const sendPush = async (sha: string) => {
      const body = JSON.stringify(githubPush({ repo: 'acme/held', ref: 'refs/heads/main', after: sha }));
      const headers = await githubHeaders(body, SECRET);
      const reply = await daemon.post('github', body, headers);
      expect(reply.status).toBe(202);
      return { runs: reply.json.runs as Array<{ id: string; job: string; joined?: true }>, body, headers };
    };

    const runIds = { running: '', again: '', waiting: '' };
    try {
      runIds.running = (await sendPush(first)).runs[0]?.id ?? '';
      await until('the first run to start', async () => (await readRun(state, 'held', runIds.running)).status === 'running');
      // The running run's commit again: its fetch may have come before this push, so a run of its own is queued.
      const again = (await sendPush(first)).runs;
      expect(again).toEqual([{ id: expect.not.stringMatching(runIds.running), job: 'held' }]);
      runIds.again = again[0]?.id ?? '';
      runIds.waiting = (await sendPush(second)).runs[0]?.id ?? '';
      await until('the run of the running commit to be superseded', async () => (await readRun(state, 'held', runIds.again)).status === 'superseded');
      const joinedOnce = await sendPush(second);
      const joinedTwice = await sendPush(second);
      expect(joinedOnce.runs).toEqual([{ id: runIds.waiting, job: 'held', joined: true }]);
      expect(joinedTwice.runs).toEqual([{ id: runIds.waiting, job: 'held', joined: true }]);
      // A joined delivery is remembered like any other: sent again, it is a duplicate.
      const redelivered = await daemon.post('github', joinedOnce.body, joinedOnce.headers);
      expect(redelivered).toMatchObject({ status: 200, json: { duplicate: true } });
    } finally {
      await writeFile(release, '');
    }
    await daemon.daemon.queue.whenIdle();
    const runs = await runsOf(state, 'held');
    expect(Object.fromEntries(runs.map((run) => [run.id, run.status]))).toEqual({ [runIds.running]: 'succeeded', [runIds.again]: 'superseded', [runIds.waiting]: 'succeeded' });
    const done = await readRun(state, 'held', runIds.waiting);
    expect(done).toMatchObject({ deployedSha: second, joined: 2 });
    expect(await readFile(done.logPath, 'utf8')).toContain('joined:   2 more deliveries of this commit while the run waited');
    expect((await readRun(state, 'held', runIds.running)).joined).toBeUndefined();
  });

  it('makes one run of a flood of one commit sent all at once while a run runs, every other push joining it, and logs at most 100 of those a second', async () => {
    const { daemon, state, release, commits: [first, second] } = await startHeldJob('flood');
    const sendPush = (sha: string) => push(daemon, 'acme/flood', sha);
    let running = '';
    let flood: Array<Array<{ id: string; job: string; joined?: true }>>;
    try {
      running = (await sendPush(first))[0]?.id ?? '';
      await until('the first run to start', async () => (await readRun(state, 'flood', running)).status === 'running');
      // Some arrive while the first of them is still being written, the rest while its run waits.
      flood = await Promise.all(Array.from({ length: 300 }, () => sendPush(second)));
    } finally {
      await writeFile(release, '');
    }
    const ids = new Set(flood.map((runs) => runs[0]?.id));
    expect(ids.size).toBe(1);
    expect(flood.filter((runs) => runs[0]?.joined === true)).toHaveLength(299);
    await daemon.daemon.queue.whenIdle();
    const runs = await runsOf(state, 'flood');
    expect(runs.map((run) => [run.id, run.status])).toEqual([
      [running, 'succeeded'],
      [[...ids][0], 'succeeded'],
    ]);
    expect(runs[1]).toMatchObject({ deployedSha: second, joined: 299 });
    // The delivery that queued the run is always logged; those that only joined it, up to 100 a
    // second, the rest counted (written at the latest at shutdown).
    await daemon.stop();
    const lines = parsedLines(daemon);
    const delivered = lines.filter((line) => line.msg === 'delivery' && line.sha === second);
    const joinedLines = delivered.filter((line) => (line.runs as Array<{ joined?: true }>)[0]?.joined === true);
    expect(delivered.length - joinedLines.length).toBe(1);
    const counted = lines.flatMap((line) => ((line.leftOut as Record<string, number> | undefined)?.joined !== undefined ? [line] : []));
    expect(counted.length).toBeGreaterThan(0);
    expect(counted.every((line) => line.level === 40)).toBe(true);
    const leftOut = leftOutCount(counted, 'joined');
    expect(joinedLines.length).toBeGreaterThanOrEqual(100);
    expect(joinedLines.length + leftOut).toBe(299);
  });

  it('supersedes the waiting run with each commit of a flood, and logs at most 100 superseded runs a second, the rest counted', async () => {
    const { daemon, state, release, commits: [first, last] } = await startHeldJob('commits');
    // Commits the remote never had: each is superseded before its run could fetch it.
    const flood = Array.from({ length: 300 }, (_, index) => (index + 1).toString(16).padStart(40, 'c'));
    let running = '';
    let newest: string;
    try {
      running = (await push(daemon, 'acme/commits', first))[0]?.id ?? '';
      await until('the first run to start', async () => (await readRun(state, 'commits', running)).status === 'running');
      const queued = await Promise.all(flood.map((sha) => push(daemon, 'acme/commits', sha)));
      expect(new Set(queued.map((runs) => runs[0]?.id)).size).toBe(300);
      expect(queued.every((runs) => runs[0]?.joined === undefined)).toBe(true);
      newest = (await push(daemon, 'acme/commits', last))[0]?.id ?? '';
    } finally {
      await writeFile(release, '');
    }
    await daemon.daemon.queue.whenIdle();
    expect(await readRun(state, 'commits', newest)).toMatchObject({ status: 'succeeded', deployedSha: last });
    await daemon.stop();
    const lines = parsedLines(daemon);
    // Every push that queued a run is logged; so is every run that started.
    expect(lines.filter((line) => line.msg === 'delivery' && line.decision === 'queued')).toHaveLength(302);
    expect(lines.filter((line) => line.msg === 'run started').map((line) => line.run)).toEqual([running, newest]);
    const supersededLines = lines.filter((line) => line.msg === 'run superseded');
    expect(supersededLines.every((line) => line.status === 'superseded' && typeof line.reason === 'string' && String(line.reason).startsWith('superseded by run '))).toBe(true);
    const counted = lines.filter((line) => line.area === 'queue' && line.leftOut !== undefined);
    expect(counted.length).toBeGreaterThan(0);
    expect(counted.every((line) => line.level === 40 && Object.keys(line.leftOut as object).join() === 'superseded')).toBe(true);
    const leftOut = leftOutCount(counted, 'superseded');
    expect(supersededLines.length).toBeGreaterThanOrEqual(100);
    // At most 100 in each second counted from the first: so never more than 200 within 1,000 ms.
    const times = supersededLines.map((line) => line.time as number);
    expect(Math.max(...times.map((at) => times.filter((other) => other >= at && other < at + 1000).length))).toBeLessThanOrEqual(200);
    expect(supersededLines.length + leftOut).toBe(300);
  });

  it('runs different jobs in parallel up to max_parallel', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const trace = join(dir, 'trace.txt');
    const command = ['sh', '-c', `echo "start $DEPLOYHOOK_JOB" >> ${trace}; sleep 0.5; echo "end $DEPLOYHOOK_JOB" >> ${trace}`];
    const job = (name: string) => ({ name, provider: 'github', repo: 'acme/many', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command });
    hook = await startDaemon(dir, { max_parallel: 2, jobs: [job('one'), job('two'), job('three')] }, { SECRET });
    const runs = await push(hook, 'acme/many', sha);
    expect(runs.map((run) => run.job)).toEqual(['one', 'two', 'three']);
    await hook.daemon.queue.whenIdle();
    const lines = (await readFile(trace, 'utf8')).trim().split('\n');
    let running = 0;
    let most = 0;
    for (const line of lines) {
      running += line.startsWith('start ') ? 1 : -1;
      most = Math.max(most, running);
    }
    expect(most).toBe(2);
    expect(lines.filter((line) => line.startsWith('end '))).toHaveLength(3);
  });
});
