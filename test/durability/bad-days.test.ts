import { execFile } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { startServe } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { parsedLines, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { readRun, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { mountTmpfs } from '../helpers/tmpfs.js';
import { childrenOf } from '../helpers/processes.js';
import { groupAlive } from '../../src/runner/kill-group.js';

const execFileAsync = promisify(execFile);
const SECRET = 'bad-days-secret-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

const job = (name: string, remote: string, command: string[], extra: Record<string, unknown> = {}) => ({ name, provider: 'github', repo: `acme/${name}`, branches: ['main'], secret_env: 'SECRET', remote, command, ...extra });

async function push(daemon: TestDaemon, name: string, sha: string) {
  const body = JSON.stringify(githubPush({ repo: `acme/${name}`, after: sha }));
  return daemon.post('github', body, await githubHeaders(body, SECRET));
}

function runId(reply: { json: Record<string, unknown> }): string {
  return (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '';
}

describe('a log folder that is full or read-only', () => {
  it('fails the run with a clear message when the log fills the disk, and keeps serving', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    await mountTmpfs(join(dir, 'logs'), 64);
    hook = await startDaemon(dir, { jobs: [job('loud', remote.bare, ['sh', '-c', 'head -c 1048576 /dev/zero | tr "\\0" x']), job('quiet', remote.bare, ['true'])] }, { SECRET });
    const record = await waitForRun(join(dir, 'state'), 'loud', runId(await push(hook, 'loud', sha)));
    expect(record.status).toBe('failed');
    expect(record.reason).toBe('the run log could not be written completely: ENOSPC');
    expect((await fetch(`${hook.url}/healthz`)).status).toBe(200);
    expect((await push(hook, 'quiet', sha)).status).toBe(202);
  });

  it('fails the run with a clear message when the log cannot be created', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { jobs: [job('app', remote.bare, ['true'])] }, { SECRET });
    await mountTmpfs(join(dir, 'logs', 'app'), 64, { readOnly: true });
    const record = await waitForRun(join(dir, 'state'), 'app', runId(await push(hook, 'app', sha)));
    expect(record).toMatchObject({ status: 'failed', reason: `could not open the run log at ${record.logPath}: EROFS` });
    expect((await fetch(`${hook.url}/healthz`)).status).toBe(200);
  });
});

describe('a state folder that is full', () => {
  it('answers 503 with Retry-After instead of acknowledging a push it cannot record, and 202 once there is room', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    await mountTmpfs(join(dir, 'state'), 256);
    hook = await startDaemon(dir, { jobs: [job('app', remote.bare, ['true'])] }, { SECRET });
    const filler = join(dir, 'state', 'filler');
    await execFileAsync('sh', ['-c', `dd if=/dev/zero of=${filler} bs=4k 2>/dev/null || true`]);
    const refused = await push(hook, 'app', sha);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    const readiness = await fetch(`${hook.url}/readyz`);
    expect(readiness.status).toBe(503);
    expect(((await readiness.json()) as { reason: string }).reason).toBe('the last run record could not be saved: ENOSPC');
    await writeFile(filler, '');
    const accepted = await push(hook, 'app', sha);
    expect(accepted.status).toBe(202);
  });
});

describe('a state folder that fills between the acknowledgement and the run', () => {
  it('fails the run before its command starts when its record or payload file cannot be written', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    await mountTmpfs(join(dir, 'state'), 256);
    const marker = join(dir, 'ran');
    hook = await startDaemon(dir, { jobs: [job('app', remote.bare, ['touch', marker], { checkout: join(dir, 'checkout') })] }, { SECRET });
    hook.daemon.queue.stopStarting();
    const id = runId(await push(hook, 'app', sha));
    const filler = join(dir, 'state', 'filler');
    await execFileAsync('sh', ['-c', `dd if=/dev/zero of=${filler} bs=4k 2>/dev/null || true`]);
    hook.daemon.queue.start();
    await hook.daemon.queue.whenIdle();
    const finished = parsedLines(hook).find((line) => line.msg === 'run finished' && line.run === id);
    expect(finished).toMatchObject({ status: 'failed' });
    const log = await readFile(join(dir, 'logs', 'app', `${id}.log`), 'utf8');
    expect(log.trimEnd().split('\n').at(-1)).toMatch(/^\[deployhook\] finished: failed, no exit code, after \d+ms \(deployhook failed: could not (record the run as running|write the payload file): ENOSPC\)$/);
    await expect(stat(marker)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('a runs folder that refuses the files the journal already holds', () => {
  it('acknowledges from the journal, and /readyz says the files could not be put in place until they can', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const first = await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { jobs: [job('app', remote.bare, ['true'])] }, { SECRET });
    const url = hook.url;
    await waitForRun(join(dir, 'state'), 'app', runId(await push(hook, 'app', first)));
    const readiness = async () => {
      const response = await fetch(`${url}/readyz`);
      const { reason } = (await response.json()) as { reason?: string };
      return { code: response.status, reason };
    };
    expect(await readiness()).toEqual({ code: 200, reason: undefined });
    // The job's folder is known, so a new run goes to the journal and then, failing, nowhere.
    await mountTmpfs(join(dir, 'state', 'runs', 'app'), 64, { readOnly: true });
    const second = await remote.commit({ 'a.txt': 'b\n' });
    expect((await push(hook, 'app', second)).status).toBe(202);
    await until('readiness to report the failure', async () => (await readiness()).code === 503);
    expect(await readiness()).toEqual({ code: 503, reason: 'run files could not be put in place from the journal (it keeps them): EROFS' });
    // Writable again: the next batch goes in whole, the run's files with it, and readiness recovers.
    await execFileAsync('umount', ['-l', join(dir, 'state', 'runs', 'app')]);
    const third = await remote.commit({ 'a.txt': 'c\n' });
    const last = runId(await push(hook, 'app', third));
    expect(await waitForRun(join(dir, 'state'), 'app', last)).toMatchObject({ status: 'succeeded' });
    await until('readiness to recover', async () => (await readiness()).code === 200);
  });
});

describe('a remote that never answers', () => {
  it('is bounded by the job timeout, recorded as timed out, while other webhooks are still acknowledged', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    try {
      hook = await startDaemon(dir, { jobs: [job('stuck', `git://127.0.0.1:${port}/app.git`, ['true'], { timeout: '2s' }), job('fine', remote.bare, ['true'])] }, { SECRET });
      const stuck = runId(await push(hook, 'stuck', sha));
      await until('git to reach the silent remote', () => sockets.length > 0);
      expect((await readRun(join(dir, 'state'), 'stuck', stuck)).status).toBe('running');
      const fine = await push(hook, 'fine', sha);
      expect(fine.status).toBe(202);
      expect(await waitForRun(join(dir, 'state'), 'fine', runId(fine))).toMatchObject({ status: 'succeeded' });
      expect(await waitForRun(join(dir, 'state'), 'stuck', stuck)).toMatchObject({ status: 'timed_out', reason: 'the run exceeded its timeout of 2.0s while git was running' });
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});

describe('a command that prints a flood of output', () => {
  it('caps the log at max_log_bytes keeping the beginning and the end, keeps memory bounded, and keeps answering', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const config = join(dir, 'deployhook.yml');
    const flood = 'echo FIRST-LINE; yes "a line of output that repeats" | head -c 400000000; echo; echo LAST-LINE';
    await writeConfigFile(config, { max_log_bytes: 1_048_576, jobs: [job('flood', remote.bare, ['sh', '-c', flood]), job('other', remote.bare, ['true'])] });
    const daemon = await startServe(['--config', config], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET } });
    try {
      const post = async (name: string) => {
        const body = JSON.stringify(githubPush({ repo: `acme/${name}`, after: sha }));
        const response = await fetch(`http://127.0.0.1:${daemon.port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
        return { status: response.status, id: ((await response.json()) as { runs: Array<{ id: string }> }).runs[0]?.id ?? '' };
      };
      const flooding = await post('flood');
      const state = join(dir, 'state');
      const deadline = Date.now() + 60_000;
      let answered = 0;
      while ((await readRun(state, 'flood', flooding.id)).status !== 'succeeded' && Date.now() < deadline) {
        expect((await fetch(`http://127.0.0.1:${daemon.port}/healthz`)).status).toBe(200);
        expect((await post('other')).status).toBe(202);
        answered += 1;
        // Paced: the point is that it keeps answering, not how many pushes fit in the meantime.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(answered).toBeGreaterThan(0);
      const record = await waitForRun(state, 'flood', flooding.id);
      expect(record.status).toBe('succeeded');
      const size = (await stat(record.logPath)).size;
      expect(size).toBeGreaterThan(1_048_576);
      expect(size).toBeLessThan(1_048_576 + 4_096);
      const log = await readFile(record.logPath, 'utf8');
      expect(log).toContain('FIRST-LINE');
      expect(log).toMatch(/\[deployhook\] \.\.\. \d+ bytes of output dropped here \(max_log_bytes is 1048576\)/);
      expect(log).toMatch(/LAST-LINE\n\[deployhook\] finished: succeeded, exit code 0/);
      const status = await readFile(`/proc/${daemon.process.pid}/status`, 'utf8');
      const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
      expect(peakKb).toBeGreaterThan(0);
      expect(peakKb).toBeLessThan(200 * 1024);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  }, 90_000);
});

describe('a process helper killed during a run', () => {
  it("ends the run failed with the reason, stops the command's processes, and the next run gets a new helper", async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { jobs: [job('slow', remote.bare, ['sh', '-c', 'echo started; sleep 30']), job('quick', remote.bare, ['true'])] }, { SECRET });
    const state = join(dir, 'state');
    const slow = runId(await push(hook, 'slow', sha));
    await until('the command to have started', async () => (await readFile((await readRun(state, 'slow', slow)).logPath, 'utf8').catch(() => '')).includes('started\n'));
    // The helper is this process's child; the command, the helper's.
    const [helper] = await childrenOf(process.pid, 'deployhook process helper');
    const [command] = await childrenOf(helper as number, 'sh\0-c\0echo started; sleep 30');
    expect(command).toBeGreaterThan(0);
    process.kill(helper as number, 'SIGKILL');

    expect(await waitForRun(state, 'slow', slow)).toMatchObject({ status: 'failed', reason: 'deployhook lost track of the command (the process helper (perl) ended (SIGKILL)); its processes were stopped' });
    // The command led its own group.
    expect(await groupAlive(command as number)).toBe(false);
    expect(await waitForRun(state, 'quick', runId(await push(hook, 'quick', sha)))).toMatchObject({ status: 'succeeded' });
  });
});
