import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsedLines, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { readRun, runsOf, waitForRun } from '../helpers/runs.js';
import { isRunning, readPid } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'recovery-secret-0123456789abcdef';
const API_TOKEN = 'recovery-api-token-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

/** A daemon that deployed one push (`true`, with a kill_grace of 1 s) and was stopped: its folder, settings and run id. */
async function oneFinishedRun(): Promise<{ dir: string; settings: Record<string, unknown>; id: string }> {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'a.txt': 'a\n' });
  const settings = { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'], kill_grace: '1s' }] };
  const daemon = await startDaemon(dir, settings, { SECRET });
  try {
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const reply = await daemon.post('github', body, await githubHeaders(body, SECRET));
    const id = (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '';
    await waitForRun(join(dir, 'state'), 'app', id);
    return { dir, settings, id };
  } finally {
    await daemon.stop();
  }
}

describe('starting on a state folder left by a crash', () => {
  it('reports a half-written record, moves it aside, removes temporary files, and starts anyway', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const runs = join(dir, 'state', 'runs', 'app');
    await mkdir(runs, { recursive: true });
    const broken = '01jd0000000000000000000000';
    await writeFile(join(runs, `${broken}.json`), '{"id": "01jd0000000000000000000000", "job": "ap');
    await writeFile(join(runs, `.${broken}.json.a1b2c3.tmp`), '{"id"');
    const settings = { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] }] };

    hook = await startDaemon(dir, settings, { SECRET });
    const warning = parsedLines(hook).find((line) => line.msg === 'skipped a run record that could not be read');
    expect(String(warning?.problem)).toContain(`${broken}.json: not a valid run record; moved aside to ${broken}.json.corrupt`);
    expect((await readdir(runs)).sort()).toEqual([`${broken}.json.corrupt`]);

    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    expect(reply.status).toBe(202);
    expect(await waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '')).toMatchObject({ status: 'succeeded' });
  });

  it("leaves alone the process group a finished run's record names, which may be someone else's by now", async () => {
    const { dir, settings, id } = await oneFinishedRun();
    // Another program's group whose leader has exited (a `cmd &` of a cron job), with the id
    // the finished record names: pids are reused.
    const [leader = 0, member = 0] = execFileSync('setsid', ['sh', '-c', 'sleep 300 >/dev/null 2>&1 & echo $$ $!'], { encoding: 'utf8' }).trim().split(' ').map(Number);
    try {
      await until('the group leader to exit', () => !isRunning(leader));
      const file = join(dir, 'state', 'runs', 'app', `${id}.json`);
      const record = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      await writeFile(file, JSON.stringify({ ...record, pgid: leader, pgidStartTime: '1', pgidBootId: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim() }));

      hook = await startDaemon(dir, settings, { SECRET });
      await hook.daemon.queue.whenIdle();
      expect(isRunning(member)).toBe(true);
      expect(hook.logLines.filter((line) => line.includes('stopped'))).toEqual([]);
    } finally {
      if (isRunning(member)) process.kill(member, 'SIGKILL');
    }
  });

  /**
   * A finished run's record made to look like one a daemon died in, with a command of that run
   * still running (a shell and its `sleep`, in a session of their own as the process helper
   * starts commands), carrying the run's id in its environment as a command does.
   */
  async function runLeftRunning(record: (run: Record<string, unknown>) => Record<string, unknown>): Promise<{ dir: string; settings: Record<string, unknown>; id: string; leader: number; member: number }> {
    const { dir, settings, id } = await oneFinishedRun();
    const file = join(dir, 'state', 'runs', 'app', `${id}.json`);
    const { finishedAt: _finished, durationMs: _duration, exitCode: _code, signal: _signal, pgid: _pgid, pgidStartTime: _start, pgidBootId: _boot, commandGroup: _command, ...run } = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify(record({ ...run, status: 'running' })));
    const command = spawn('sh', ['-c', `sleep 300 & echo $! > ${join(dir, 'member.pid')}; wait`], { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DEPLOYHOOK_RUN_ID: id } });
    command.unref();
    const leader = command.pid ?? Number.NaN;
    expect(leader).toBeGreaterThan(0);
    await until('the command to start its child', async () => (await readFile(join(dir, 'member.pid'), 'utf8').catch(() => '')).trim() !== '');
    return { dir, settings, id, leader, member: await readPid(dir, 'member.pid') };
  }

  it("names the command's group in the running record once the command runs", async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const command = ['sh', '-c', `echo $$ > ${join(dir, 'command.pid')}; sleep 1`];
    hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command }] }, { SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    const id = (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '';
    const state = join(dir, 'state');
    await until("the command's group in the record", async () => (await readRun(state, 'app', id).catch(() => undefined))?.commandGroup === true);
    await until('the command to write its pid', async () => (await readFile(join(dir, 'command.pid'), 'utf8').catch(() => '')).trim() !== '');
    expect(await readRun(state, 'app', id)).toMatchObject({ status: 'running', pgid: await readPid(dir, 'command.pid'), commandGroup: true });
    expect(await waitForRun(state, 'app', id)).toMatchObject({ status: 'succeeded' });
  });

  it('stops a command the daemon died in before it could record its group, found by its run id, before the run is repeated', async () => {
    // The record names no group, or git's, gone by now: the daemon died within the moment
    // between the command's start and the save of its group.
    const { dir, settings, id, leader, member } = await runLeftRunning((run) => run);
    try {
      hook = await startDaemon(dir, settings, { SECRET });
      expect(isRunning(leader)).toBe(false);
      expect(isRunning(member)).toBe(false);
      expect(parsedLines(hook).filter((line) => String(line.msg).startsWith('stopped'))).toEqual([
        expect.objectContaining({ msg: 'stopped the command of a run the daemon died in before it could record its process group', run: id, pgid: leader }),
      ]);
      await hook.daemon.queue.whenIdle();
      const runs = await runsOf(join(dir, 'state'), 'app');
      const interrupted = runs.find((run) => run.id === id);
      expect(interrupted).toMatchObject({ status: 'interrupted' });
      expect(runs.find((run) => run.id === interrupted?.retriedBy)).toMatchObject({ status: 'succeeded' });
    } finally {
      for (const pid of [leader, member]) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it("leaves alone a run's process that left the recorded command's group and session, as at the end of a run", async () => {
    // The record names the command's group, gone; what still carries the run's id left it
    // with `setsid` (a daemon the command started): a run leaves such a process running.
    const { dir, settings, leader, member } = await runLeftRunning((run) => ({ ...run, pgid: 4_194_305, pgidStartTime: '1', commandGroup: true }));
    try {
      hook = await startDaemon(dir, settings, { SECRET });
      await hook.daemon.queue.whenIdle();
      expect(isRunning(leader)).toBe(true);
      expect(isRunning(member)).toBe(true);
      expect(parsedLines(hook).filter((line) => String(line.msg).startsWith('stopped'))).toEqual([]);
    } finally {
      for (const pid of [leader, member]) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('resumes a run that was queued when the daemon stopped', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const settings = { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] }] };
    hook = await startDaemon(dir, settings, { SECRET });
    // Hold runs back, as if the daemon died right after acknowledging.
    hook.daemon.queue.stopStarting();
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    const id = (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '';
    await hook.stop();
    expect((await runsOf(join(dir, 'state'), 'app')).map((run) => run.status)).toEqual(['queued']);

    hook = await startDaemon(dir, settings, { SECRET });
    expect(await waitForRun(join(dir, 'state'), 'app', id)).toMatchObject({ status: 'succeeded', deployedSha: sha });
  });

  it('repeats a rollback the daemon died in as the same rollback, not as a deploy of the tip', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const old = await remote.commit({ 'v.txt': 'old\n' });
    const tip = await remote.commit({ 'v.txt': 'tip\n' });
    const id = '01jd0000000000000000000001';
    await mkdir(join(dir, 'state', 'runs', 'app'), { recursive: true });
    const record = {
      id, job: 'app', status: 'running', exact: true, sha: old, before: '0'.repeat(40), repo: 'acme/app', ref: 'refs/heads/main', branch: 'main',
      trigger: { type: 'manual', provider: 'github', delivery: 'd-1', pusher: 'api: ops@host', requestedBy: 'api: ops@host' },
      queuedAt: new Date().toISOString(), startedAt: new Date().toISOString(), logPath: '/etc/passwd', eventFile: '/etc/shadow',
    };
    await writeFile(join(dir, 'state', 'runs', 'app', `${id}.json`), JSON.stringify(record));
    const settings = { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['cat', 'v.txt'] }] };

    hook = await startDaemon(dir, settings, { SECRET });
    await hook.daemon.queue.whenIdle();
    const runs = await runsOf(join(dir, 'state'), 'app');
    const interrupted = runs.find((run) => run.id === id);
    expect(interrupted).toMatchObject({ status: 'interrupted', logPath: join(dir, 'logs', 'app', `${id}.log`), eventFile: join(dir, 'state', 'runs', 'app', `${id}.event.json`) });
    const repeat = runs.find((run) => run.id === interrupted?.retriedBy);
    expect(repeat).toMatchObject({ status: 'succeeded', exact: true, sha: old, deployedSha: old, trigger: { type: 'recovery', retryOf: id } });
    expect(repeat?.deployedSha).not.toBe(tip);
  });

  it('counts in deployhook_runs_total the runs it ends at start, and none that ended before', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'v.txt': 'v\n' });
    const at = new Date().toISOString();
    const record = (job: string, id: string, fields: Record<string, unknown>) => ({
      id, job, sha, before: '0'.repeat(40), repo: `acme/${job}`, ref: 'refs/heads/main', branch: 'main',
      trigger: { type: 'webhook', provider: 'github', delivery: `d-${job}-${id}`, pusher: 'ops' },
      queuedAt: at, logPath: '', eventFile: '', ...fields,
    });
    const records = [
      // The daemon died during this run: interrupted now, and repeated.
      record('web', '01jd0000000000000000000001', { status: 'running', startedAt: at }),
      // A save as superseded that failed, behind a run that came after it: superseded now.
      record('app', '01jd0000000000000000000001', { status: 'queued' }),
      record('app', '01jd0000000000000000000002', { status: 'succeeded', deployedSha: sha, startedAt: at, finishedAt: at, exitCode: 0 }),
      // A job no longer in the config: cancelled now.
      record('gone', '01jd0000000000000000000001', { status: 'queued' }),
      // Interrupted now, and not repeated: the push queued behind it deploys. Counted once.
      record('db', '01jd0000000000000000000001', { status: 'running', startedAt: at }),
      record('db', '01jd0000000000000000000002', { status: 'queued' }),
    ];
    for (const run of records) {
      await mkdir(join(dir, 'state', 'runs', run.job), { recursive: true });
      await writeFile(join(dir, 'state', 'runs', run.job, `${run.id}.json`), JSON.stringify(run));
    }
    const job = (name: string) => ({ name, provider: 'github', repo: `acme/${name}`, branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] });
    hook = await startDaemon(dir, { api: { token_env: 'API_TOKEN' }, jobs: [job('web'), job('app'), job('db')] }, { SECRET, API_TOKEN });
    await hook.daemon.queue.whenIdle();

    const metrics = await (await fetch(`${hook.url}/metrics`, { headers: { authorization: `Bearer ${API_TOKEN}` } })).text();
    const counted = metrics.split('\n').filter((line) => line.startsWith('deployhook_runs_total{')).sort();
    expect(counted).toEqual([
      'deployhook_runs_total{job="app",status="superseded"} 1',
      'deployhook_runs_total{job="db",status="interrupted"} 1',
      'deployhook_runs_total{job="db",status="succeeded"} 1',
      'deployhook_runs_total{job="gone",status="cancelled"} 1',
      'deployhook_runs_total{job="web",status="interrupted"} 1',
      // The interrupted run's repeat, run by this daemon.
      'deployhook_runs_total{job="web",status="succeeded"} 1',
    ]);
  });

  it('runs nothing older than a run that came after it, whatever a failed save left on disk, and orders by run id, not by the clock', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const old = await remote.commit({ 'v.txt': 'old\n' });
    const tip = await remote.commit({ 'v.txt': 'tip\n' });
    const at = (minutes: number) => new Date(Date.now() + minutes * 60_000).toISOString();
    const record = (job: string, id: string, fields: Record<string, unknown>) => ({
      id, job, sha: old, exact: true, before: '0'.repeat(40), repo: `acme/${job}`, ref: 'refs/heads/main', branch: 'main',
      trigger: { type: 'manual', provider: 'github', delivery: `d-${id}`, pusher: 'ops', requestedBy: 'ops' },
      queuedAt: at(0), logPath: '', eventFile: '', ...fields,
    });
    const records = [
      // A rollback whose save as superseded failed, then the newer deploy of the tip that replaced it.
      record('app', '01jd0000000000000000000001', { status: 'queued' }),
      record('app', '01jd0000000000000000000002', { status: 'succeeded', sha: tip, exact: false, deployedSha: tip, startedAt: at(0), finishedAt: at(1), exitCode: 0 }),
      // A rollback whose final save failed (the disk still says running), then a newer run.
      record('web', '01jd0000000000000000000001', { status: 'running', startedAt: at(0) }),
      record('web', '01jd0000000000000000000002', { status: 'failed', sha: tip, exact: false, startedAt: at(1), finishedAt: at(2), exitCode: 1 }),
      // Two waiting runs, the newer queued while the clock read earlier (stepped back at boot).
      record('api', '01jd0000000000000000000001', { status: 'queued', sha: tip, queuedAt: at(5) }),
      record('api', '01jd0000000000000000000002', { status: 'queued', queuedAt: at(-5) }),
      // A run cut short with a push queued behind it: that push deploys next, no repeat.
      record('db', '01jd0000000000000000000001', { status: 'running', startedAt: at(0) }),
      record('db', '01jd0000000000000000000002', { status: 'queued', sha: tip, exact: false }),
      // What an earlier recovery left when it repeated a run behind a queued one, and stopped again.
      record('ops', '01jd0000000000000000000001', { status: 'interrupted', startedAt: at(0), finishedAt: at(1), retriedBy: '01jd0000000000000000000003' }),
      record('ops', '01jd0000000000000000000002', { status: 'queued', sha: tip, exact: false }),
      record('ops', '01jd0000000000000000000003', { status: 'superseded', supersededBy: '01jd0000000000000000000002', trigger: { type: 'recovery', provider: 'github', delivery: 'd', pusher: 'ops', retryOf: '01jd0000000000000000000001' } }),
    ];
    for (const run of records) {
      await mkdir(join(dir, 'state', 'runs', run.job), { recursive: true });
      await writeFile(join(dir, 'state', 'runs', run.job, `${run.id}.json`), JSON.stringify(run));
    }
    const job = (name: string) => ({ name, provider: 'github', repo: `acme/${name}`, branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['cat', 'v.txt'] });
    hook = await startDaemon(dir, { jobs: [job('app'), job('web'), job('api'), job('db'), job('ops')] }, { SECRET });
    await hook.daemon.queue.whenIdle();

    const state = join(dir, 'state');
    expect(await runsOf(state, 'app')).toEqual([
      expect.objectContaining({ id: '01jd0000000000000000000001', status: 'superseded', supersededBy: '01jd0000000000000000000002', reason: 'superseded by run 01jd0000000000000000000002, which came after it' }),
      expect.objectContaining({ id: '01jd0000000000000000000002', status: 'succeeded' }),
    ]);
    const web = await runsOf(state, 'web');
    expect(web).toEqual([
      expect.objectContaining({ id: '01jd0000000000000000000001', status: 'interrupted', supersededBy: '01jd0000000000000000000002', reason: 'the daemon stopped while this run was in progress; not repeated: run 01jd0000000000000000000002 came after it and took its place' }),
      expect.objectContaining({ id: '01jd0000000000000000000002', status: 'failed' }),
    ]);
    expect(web[0]?.retriedBy).toBeUndefined();
    // The newer run id is the one deployed: the rollback to the old commit, queued second.
    expect(await runsOf(state, 'api')).toEqual([
      expect.objectContaining({ id: '01jd0000000000000000000001', status: 'superseded', supersededBy: '01jd0000000000000000000002' }),
      expect.objectContaining({ id: '01jd0000000000000000000002', status: 'succeeded', deployedSha: old }),
    ]);
    const db = await runsOf(state, 'db');
    expect(db).toEqual([
      expect.objectContaining({ id: '01jd0000000000000000000001', status: 'interrupted', supersededBy: '01jd0000000000000000000002' }),
      expect.objectContaining({ id: '01jd0000000000000000000002', status: 'succeeded', deployedSha: tip }),
    ]);
    expect(db[0]?.retriedBy).toBeUndefined();
    expect((await runsOf(state, 'ops')).map((run) => [run.id, run.status])).toEqual([
      ['01jd0000000000000000000001', 'interrupted'],
      ['01jd0000000000000000000002', 'succeeded'],
      ['01jd0000000000000000000003', 'superseded'],
    ]);
  });
});
