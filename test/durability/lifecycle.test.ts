import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { groupAlive } from '../../src/runner/kill-group.js';
import { CLI, REPO_ROOT, runCli, startServe, type ServeProcess } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { inBatches, leftOutCount, parsedLines, startDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { kernelLocked } from '../helpers/processes.js';
import { readRun, runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'lifecycle-secret-0123456789abcd';
const ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET };

async function push(port: number, repo: string, sha: string): Promise<{ status: number; headers: Headers; body: { runs?: Array<{ id: string }> } }> {
  const body = JSON.stringify(githubPush({ repo, after: sha }));
  const response = await fetch(`http://127.0.0.1:${port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
  return { status: response.status, headers: response.headers, body: (await response.json()) as { runs?: Array<{ id: string }> } };
}

const slowJob = (remote: string, marker: string) => ({
  name: 'slow',
  provider: 'github',
  repo: 'acme/slow',
  branches: ['main'],
  secret_env: 'SECRET',
  remote,
  kill_grace: '1s',
  // The first run hangs until it is stopped; the repeat after restart finishes at once.
  command: ['sh', '-c', `if [ -e ${marker} ]; then echo repeated; else touch ${marker}; echo waiting; sleep 60; fi`],
});

/** `deployhook serve` as a process, with the slow job's first run started (its command waiting). */
async function serveSlowRun(shutdownTimeout: string) {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'a.txt': 'a\n' });
  const config = join(dir, 'deployhook.yml');
  await writeConfigFile(config, { shutdown_timeout: shutdownTimeout, jobs: [slowJob(remote.bare, join(dir, 'marker'))] });
  const state = join(dir, 'state');
  // The daemon's temporary folder (its FIFOs' folder is made there), of this test alone.
  const tmp = join(dir, 'tmp');
  await mkdir(tmp);
  const first = await startServe(['--config', config], { env: { ...ENV, TMPDIR: tmp } });
  const accepted = await push(first.port, 'acme/slow', sha);
  expect(accepted.status).toBe(202);
  const id = accepted.body.runs?.[0]?.id ?? '';
  await until('the command to start', async () => (await readRun(state, 'slow', id).catch(() => undefined))?.pgid !== undefined);
  return { config, state, sha, first, id, tmp };
}

describe('SIGTERM in the middle of a run', () => {
  it('answers 503 with Retry-After while draining, stops the command after shutdown_timeout as interrupted, exits 0, and repeats the run after restart', async () => {
    const { config, state, sha, first, id, tmp } = await serveSlowRun('2s');
    const pipesFolder = `deployhook-pipes-${String(first.process.pid)}-`;
    expect((await readdir(tmp)).filter((name) => name.startsWith(pipesFolder))).toHaveLength(1);

    const exited = first.stop('SIGTERM');
    await until('the daemon to log that it is shutting down', async () => first.lines.some((line) => line.msg === 'shutting down'));
    const draining = await push(first.port, 'acme/slow', sha);
    expect(draining.status).toBe(503);
    expect(draining.headers.get('retry-after')).toBe('10');
    expect(await exited).toBe(0);
    // The folder of the FIFOs made ahead goes with the daemon.
    expect((await readdir(tmp)).filter((name) => name.startsWith(pipesFolder))).toEqual([]);
    expect(first.lines.filter((line) => String(line.msg).startsWith('runs still in progress after shutdown_timeout'))).toMatchObject([{ level: 40, runs: [id] }]);

    const interrupted = await readRun(state, 'slow', id);
    expect(interrupted).toMatchObject({ status: 'interrupted', reason: expect.stringContaining('the daemon shut down while the command was running') });
    expect(await readFile(interrupted.logPath, 'utf8')).toMatch(/\[deployhook\] finished: interrupted/);

    const second = await startServe(['--config', config], { env: ENV });
    try {
      await until('the interrupted run to be repeated', async () => (await readRun(state, 'slow', id)).retriedBy !== undefined);
      const retry = await waitForRun(state, 'slow', (await readRun(state, 'slow', id)).retriedBy ?? '');
      expect(retry).toMatchObject({ status: 'succeeded', sha, trigger: { type: 'recovery', retryOf: id } });
      expect(await readFile(retry.logPath, 'utf8')).toContain('repeated');
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe('a second signal while draining', () => {
  it('exits 1 at once, killing the command, and still logs the counts of the deliveries it left out of the log that second', async () => {
    const { first, sha, state, id } = await serveSlowRun('30s');
    // More deliveries that deploy nothing (a wrong signature) than are logged one by one in a second.
    const body = JSON.stringify(githubPush({ repo: 'acme/slow', after: sha }));
    const headers = await githubHeaders(body, 'not-the-secret-0123456789');
    // Sent 50 at a time, so that the flood and both signals fit in the limiter's second as a rule
    // (the count is then logged only by the exit); more than two seconds' worth of lines in any case.
    const flood = 250;
    const statuses = await inBatches(flood, async () => (await fetch(`http://127.0.0.1:${first.port}/hooks/github`, { method: 'POST', body, headers })).status, 50);
    expect(statuses.filter((status) => status === 401)).toHaveLength(flood);

    const exited = first.stop('SIGTERM');
    await until('the daemon to log that it is shutting down', async () => first.lines.some((line) => line.msg === 'shutting down'));
    first.process.kill('SIGTERM');
    expect(await exited).toBe(1);
    expect(first.lines).toContainEqual(expect.objectContaining({ level: 40, msg: expect.stringContaining('a second signal: exiting now') }));
    // Each delivery is either a line of its own or in a count.
    const logged = first.lines.filter((line) => line.msg === 'delivery' && line.decision === 'rejected').length;
    expect(logged).toBeLessThan(flood);
    expect(logged + leftOutCount(first.lines, 'rejected')).toBe(flood);
    // The run was not finished by this daemon (the next start repeats it), and its command is gone.
    const run = await readRun(state, 'slow', id);
    expect(run).toMatchObject({ status: 'running' });
    expect(run.pgid).toBeGreaterThan(1);
    await until("the command's process group to be gone", async () => !(await groupAlive(run.pgid ?? 0)));
  });
});

describe('kill -9 during a run whose output passed max_log_bytes', () => {
  it('waits for a running command as long as shutdown_timeout says, also beyond the 24.8 days a timer takes', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['sh', '-c', 'echo started; sleep 1; echo done'] };
    const hook = await startDaemon(dir, { shutdown_timeout: '25d', jobs: [job] }, { SECRET });
    try {
      const id = (await push(Number(new URL(hook.url).port), 'acme/app', sha)).body.runs?.[0]?.id ?? '';
      await until('the command to start', async () => (await readRun(join(dir, 'state'), 'app', id).catch(() => undefined))?.pgid !== undefined);
      await hook.stop();
      expect(await readRun(join(dir, 'state'), 'app', id)).toMatchObject({ status: 'succeeded' });
    } finally {
      await hook.stop();
    }
  });

  it('puts the end of the output the cap kept aside into the log on restart, with a line on what happened', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const marker = join(dir, 'marker');
    const job = {
      ...slowJob(remote.bare, marker),
      // ~7 KB of lines, the last one made by the shell (so not in the command line the log shows
      // first), then a wait: the end is past the cap's kept head.
      command: ['sh', '-c', `if [ -e ${marker} ]; then echo repeated; else touch ${marker}; i=0; while [ $i -lt 300 ]; do echo "line $i of the output"; i=$((i+1)); done; echo "LAST-LINE-$((6*7))"; sleep 60; fi`],
    };
    const config = join(dir, 'deployhook.yml');
    await writeConfigFile(config, { max_log_bytes: 4096, jobs: [job] });
    const state = join(dir, 'state');
    const first = await startServe(['--config', config], { env: ENV });
    const id = (await push(first.port, 'acme/slow', sha)).body.runs?.[0]?.id ?? '';
    const { logPath } = await readRun(state, 'slow', id);
    const spilled = async () => (await Promise.all(['a', 'b'].map((side) => readFile(`${logPath}.tail-${side}`, 'utf8').catch(() => '')))).join('');
    await until('the last line to reach the kept end', async () => (await spilled()).includes('LAST-LINE-42'));
    expect(await readFile(logPath, 'utf8')).not.toContain('LAST-LINE-42');

    expect(await first.stop('SIGKILL')).toBe(undefined);
    const second = await startServe(['--config', config], { env: ENV });
    try {
      await until('the run the killed daemon left to be repeated', async () => (await readRun(state, 'slow', id)).retriedBy !== undefined);
      const log = await readFile(logPath, 'utf8');
      expect(log).toMatch(/^line 0 of the output$/m);
      expect(log).toContain('[deployhook] ... output dropped here (past max_log_bytes); the end of it that was kept follows ...');
      expect(log).toMatch(/^line 299 of the output\nLAST-LINE-42\n/m);
      expect(log.trimEnd().split('\n').at(-1)).toBe('[deployhook] the daemon stopped while this run was in progress (killed or crashed); the run is repeated');
      expect(await spilled()).toBe('');
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe('a second daemon on the same state_dir', () => {
  it('refuses to start, leaving the first daemon and its running deploy alone; after a kill -9 the lock is taken over', async () => {
    const { config, state, first, id } = await serveSlowRun('1s');
    const journal = await readdir(join(state, 'journal', 'runs'));

    // The same config on another port, as an operator trying `deployhook serve` beside the service.
    const second = await runCli(['serve', '--config', config, '--listen', '127.0.0.1:0'], { env: ENV });
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`Expected to be the only deployhook using state_dir ${state}, but process ${first.process.pid} holds ${join(state, 'deployhook.lock')}`);
    expect(await readRun(state, 'slow', id)).toMatchObject({ status: 'running' });
    expect(await readdir(join(state, 'journal', 'runs'))).toEqual(journal);
    expect(first.process.exitCode).toBe(null);
    // Both locks: the kernel's on the folder too, with nothing to warn about.
    expect(await kernelLocked(state)).toBe(true);
    expect(first.lines.filter((line) => String(line.msg).includes("kernel's lock"))).toEqual([]);

    // A daemon that died without releasing the lock does not hold it.
    expect(await first.stop('SIGKILL')).toBe(undefined);
    const third = await startServe(['--config', config], { env: ENV });
    try {
      await until('the run the killed daemon left to be repeated', async () => (await readRun(state, 'slow', id)).retriedBy !== undefined);
    } finally {
      expect(await third.stop()).toBe(0);
    }
    await expect(readFile(join(state, 'deployhook.lock'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await kernelLocked(state)).toBe(false);
  });
});

describe('SIGHUP', () => {
  async function reloaded(daemon: ServeProcess, count: number): Promise<void> {
    await until('the reload to finish', async () => daemon.lines.filter((line) => line.msg === 'config reloaded' || String(line.msg).startsWith('reload refused')).length >= count);
  }

  it('keeps the old config when the new one is invalid, and applies a valid one', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const config = join(dir, 'deployhook.yml');
    const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] };
    await writeConfigFile(config, { jobs: [job] });
    const daemon = await startServe(['--config', config], { env: ENV });
    try {
      await writeConfigFile(config, { jobs: [{ ...job, branches: [''] }] });
      daemon.process.kill('SIGHUP');
      await reloaded(daemon, 1);
      const refused = daemon.lines.find((line) => String(line.msg).startsWith('reload refused'));
      expect(refused?.issues).toEqual(['jobs[0].branches[0]: expected a non-empty glob']);
      expect((await push(daemon.port, 'acme/app', sha)).status).toBe(202);

      await writeConfigFile(config, { jobs: [{ ...job, name: 'renamed', repo: 'acme/other' }] });
      daemon.process.kill('SIGHUP');
      await reloaded(daemon, 2);
      // The secret still verifies (it is the new job's), but no job deploys acme/app now.
      expect(await push(daemon.port, 'acme/app', sha)).toMatchObject({ status: 200, body: { runs: [] } });
      expect((await push(daemon.port, 'acme/other', sha)).status).toBe(202);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it("the unit's reload, sent as the daemon starts, waits for the daemon's handler and reloads it instead of ending it", async () => {
    const dir = await tempDir();
    const config = join(dir, 'deployhook.yml');
    await writeConfigFile(config, { jobs: [] });
    const unit = await readFile(join(REPO_ROOT, 'systemd', 'deployhook.service'), 'utf8');
    expect(unit).toMatch(/^ExecReload=\/opt\/deployhook\/libexec\/reload\.sh \$MAINPID$/m);
    // Node's own SIGHUP action ends the process: a plain `kill -HUP` this early would stop it.
    const daemon = execa('node', [CLI, 'serve', '--config', config], { env: ENV, reject: false });
    let output = '';
    daemon.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const reload = await execa(join(REPO_ROOT, 'libexec', 'reload.sh'), [String(daemon.pid)], { reject: false });
    expect(reload.exitCode).toBe(0);
    await until('the reload to be logged', () => output.includes('"msg":"config reloaded"'));
    expect(daemon.exitCode).toBeNull();
    daemon.kill('SIGTERM');
    expect((await daemon).exitCode).toBe(0);
    const missing = await execa(join(REPO_ROOT, 'libexec', 'reload.sh'), [String(daemon.pid)], { reject: false });
    expect(missing).toMatchObject({ exitCode: 1, stderr: `deployhook: no process ${daemon.pid} to reload` });
  });

  it('reloads one at a time, in the order asked: the newest file wins, whichever read was slower', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'a.txt': 'a\n' });
    const job = (name: string, more: Record<string, unknown> = { secret_env: 'SECRET' }) => ({ name, provider: 'github', repo: `acme/${name}`, branches: ['main'], remote: remote.bare, command: ['true'], ...more });
    const hook = await startDaemon(dir, { jobs: [job('a')] }, { SECRET });
    try {
      // The first reload's secret file is a FIFO: its read waits for a writer.
      const fifo = join(dir, 'slow-secret');
      await execa('mkfifo', [fifo]);
      const write = (jobs: unknown[]) => writeConfigFile(hook.config.file, { jobs });
      await write([job('a'), job('old', { secret_file: fifo })]);
      const first = hook.daemon.reload();
      // A FIFO opens for writing without waiting only once a reader is opening it.
      let writer: number | undefined;
      await until('the first reload to wait for its secret', () => {
        try {
          writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
          return true;
        } catch {
          return false;
        }
      });
      await write([job('a'), job('new')]);
      const second = hook.daemon.reload();
      writeSync(writer ?? -1, 'old-job-secret-0123456789abcdef\n');
      closeSync(writer ?? -1);

      expect((await first).jobs.map((each) => each.name)).toEqual(['a', 'old']);
      expect((await second).jobs.map((each) => each.name)).toEqual(['a', 'new']);
      const reloaded = parsedLines(hook).filter((line) => line['msg'] === 'config reloaded');
      expect(reloaded.map((line) => line['removed'])).toEqual([[], ['old']]);
      const body = JSON.stringify(githubPush({ repo: 'acme/new', after: 'b'.repeat(40) }));
      expect((await hook.post('github', body, await githubHeaders(body, SECRET))).status).toBe(202);
    } finally {
      await hook.stop();
    }
  });

  it('applies new client timeouts on reload, and says which settings wait for a restart', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'a.txt': 'a\n' });
    const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] };
    const hook = await startDaemon(dir, { headers_timeout: '30s', request_timeout: '60s', jobs: [job] }, { SECRET });
    try {
      await writeConfigFile(hook.config.file, { headers_timeout: '1s', request_timeout: '2s', dedup_window: '1d', jobs: [job] });
      const applied = await hook.daemon.reload();
      expect(applied).toMatchObject({ headersTimeoutMs: 1_000, requestTimeoutMs: 2_000, dedupWindowMs: 7 * 24 * 60 * 60 * 1000 });
      // A client that never finishes its headers: dropped by the new limit, not the old one of 30 s.
      const port = Number(new URL(hook.url).port);
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.write('POST /hooks/github HTTP/1.1\r\nHost: x\r\n'));
        let text = '';
        socket.on('data', (chunk) => (text += chunk.toString()));
        socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''));
        socket.on('error', reject);
        socket.setTimeout(10_000, () => {
          socket.destroy();
          resolve('still open after 10 s');
        });
      });
      expect(answer).toBe('HTTP/1.1 408 Request Timeout');
      const warned = hook.logLines.map((line) => JSON.parse(line) as { msg?: string; key?: string }).filter((line) => line.msg === 'this setting changes only on restart; keeping the running value');
      expect(warned.map((line) => line.key)).toEqual(['dedup_window']);

      // A tolerance the running dedup window (7 days) cannot cover: a replay within it would run again.
      await writeConfigFile(hook.config.file, { dedup_window: '30d', timestamp_tolerance: '4d', jobs: [job] });
      await expect(hook.daemon.reload()).rejects.toMatchObject({ issues: [{ path: 'timestamp_tolerance', message: 'expected at most half the running dedup_window (168h00m), which changes only on restart; got 96h00m' }] });
      // A new state_dir waits for a restart, and so do the checkouts under it.
      await writeConfigFile(hook.config.file, { state_dir: 'elsewhere', jobs: [job] });
      const moved = await hook.daemon.reload();
      expect(moved.jobs[0]?.checkout).toBe(join(dir, 'state', 'checkouts', 'app'));
      // ...where another job may not then take it.
      await writeConfigFile(hook.config.file, { state_dir: 'elsewhere', jobs: [job, { ...job, name: 'copy', repo: 'acme/copy', checkout: join(dir, 'state', 'checkouts', 'app') }] });
      await expect(hook.daemon.reload()).rejects.toMatchObject({ issues: [{ path: 'job "copy".checkout', message: expect.stringMatching(/is also the checkout of job "app"$/) }] });
    } finally {
      await hook.stop();
    }
  });

  it('cancels the queued runs of a job that a reload removed, with that reason', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const job = slowJob(remote.bare, join(dir, 'marker'));
    const hook = await startDaemon(dir, { shutdown_timeout: '1s', jobs: [job] }, { SECRET });
    try {
      const body = JSON.stringify(githubPush({ repo: 'acme/slow', after: sha }));
      const first = await hook.post('github', body, await githubHeaders(body, SECRET));
      const second = await hook.post('github', body, await githubHeaders(body, SECRET));
      const waiting = (second.json.runs as Array<{ id: string }>)[0]?.id ?? '';
      expect(hook.daemon.queue.snapshot('slow').pending?.id).toBe(waiting);
      await writeConfigFile(hook.config.file, { shutdown_timeout: '1s', jobs: [] });
      await hook.daemon.reload();
      const cancelled = await waitForRun(join(dir, 'state'), 'slow', waiting);
      expect(cancelled).toMatchObject({ status: 'cancelled', reason: 'job slow was removed from the config by a reload' });
      expect((first.json.runs as Array<{ id: string }>)[0]?.id).toBeDefined();
    } finally {
      await hook.stop();
    }
    expect((await runsOf(join(dir, 'state'), 'slow')).map((run) => run.status).sort()).toEqual(['cancelled', 'interrupted']);
  });
});
