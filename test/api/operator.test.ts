import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { execa } from 'execa';
import { CLI, runCli, startServe, type ServeProcess } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote, git, type TestRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { freePort } from '../helpers/ports.js';
import { isRunning } from '../helpers/processes.js';
import { readRun, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'operator-secret-0123456789abcdef';
const TOKEN = 'operator-api-token-0123456789abcdef';
const READER = 'read-only-ui-token-0123456789abcdef';
const ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', SECRET, API_TOKEN: TOKEN, UI_TOKEN: READER };

let daemon: ServeProcess | undefined;

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

interface Setup {
  dir: string;
  config: string;
  remote: TestRemote;
  url: string;
}

async function setup(command: string[], api: Record<string, string> | null = { token_env: 'API_TOKEN', ui_token_env: 'UI_TOKEN' }, env: Record<string, string> = {}, listen = '127.0.0.1:0'): Promise<Setup> {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const config = join(dir, 'deployhook.yml');
  const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, kill_grace: '1s', env: { ...env, WORK: dir } };
  await writeConfigFile(config, { listen, shutdown_timeout: '1s', ...(api ? { api } : {}), jobs: [job] });
  daemon = await startServe(['--config', config], { env: ENV });
  return { dir, config, remote, url: `http://127.0.0.1:${daemon.port}` };
}

async function push(url: string, sha: string): Promise<string> {
  const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
  const response = await fetch(`${url}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
  expect(response.status).toBe(202);
  return ((await response.json()) as { runs: Array<{ id: string }> }).runs[0]?.id ?? '';
}

/** The WWW-Authenticate lines of a request without a token, each as sent. */
function challenges(url: string, method: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    request(url, { method }, (response) => {
      response.resume();
      resolve(response.rawHeaders.filter((_, i) => i % 2 === 1 && response.rawHeaders[i - 1]?.toLowerCase() === 'www-authenticate'));
    })
      .on('error', reject)
      .end();
  });
}

const cli = (setupResult: Setup, ...args: string[]) => runCli([...args, '--config', setupResult.config, '--url', setupResult.url], { env: ENV });
const api = (url: string, path: string, token = TOKEN, init: RequestInit = {}) => fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
/** A run's record, as the API gives it. */
const runRecord = async (url: string, id: string) => ((await (await api(url, `/api/runs/${id}`)).json()) as { run: RunRecord }).run;
/** A run's log so far, as the API gives it. */
const runLog = async (url: string, id: string) => (await api(url, `/api/runs/${id}/log`)).text();

describe('the operator API and CLI against a running daemon', () => {
  it('refuses a missing or wrong token with 401, a read-only token for changes with 403, and is off without a token', async () => {
    const on = await setup(['true']);
    expect((await fetch(`${on.url}/api/jobs`)).status).toBe(401);
    expect((await api(on.url, '/api/jobs', 'wrong-token')).status).toBe(401);
    expect((await api(on.url, '/metrics', 'wrong-token')).status).toBe(401);
    // A read offers Basic beside Bearer, for the status page's own requests (a browser answers
    // only Basic, and reads the first challenge of a line); a change, which Basic never
    // authorises, Bearer alone.
    expect(await challenges(`${on.url}/api/runs/x/log`, 'GET')).toEqual(['Basic realm="deployhook", charset="UTF-8"', 'Bearer realm="deployhook"']);
    expect(await challenges(`${on.url}/api/jobs/app/deploy`, 'POST')).toEqual(['Bearer realm="deployhook"']);
    expect((await api(on.url, '/api/jobs')).status).toBe(200);
    expect((await api(on.url, '/api/jobs', READER)).status).toBe(200);
    expect((await api(on.url, '/api/jobs/app/deploy', READER, { method: 'POST' })).status).toBe(403);
    // A webhook sent to a wrong path under /hooks is told 404, not asked for the API's token;
    // any other path is the API's, which names nothing to a caller without a token.
    for (const path of ['/hooks', '/hooks/', '/hooks/GitHub', '/hooks/github/a/b']) {
      const reply = await fetch(`${on.url}${path}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      expect(reply.status, path).toBe(404);
      expect(reply.headers.get('connection'), path).toBe('close');
      expect(await reply.json(), path).toEqual({ error: 'no such path: expected /hooks/<provider>, or /hooks/generic/<source>' });
    }
    expect((await fetch(`${on.url}/hook/github`, { method: 'POST', body: '{}' })).status).toBe(401);
    const wrong = await runCli(['jobs', '--url', on.url, '--token', 'wrong-token'], { env: ENV });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toEqual([`deployhook: The daemon at ${on.url} refused the API token: check api.token_env or api.token_file in the config, $DEPLOYHOOK_TOKEN, --token-file or --token.`]);
    const unknown = await cli(on, 'deploy', 'nope');
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr.trim()).toBe('deployhook: no job named "nope" (HTTP 404)');
    await daemon?.stop();

    const off = await setup(['true'], null);
    expect((await api(off.url, '/api/jobs')).status).toBe(404);
    expect((await api(off.url, '/metrics')).status).toBe(404);
    await daemon?.stop();
    daemon = undefined;
    const down = await runCli(['jobs', '--url', off.url, '--token', TOKEN], { env: ENV });
    expect(down.exitCode).toBe(1);
    expect(down.stderr.trim()).toMatch(new RegExp(`^deployhook: Could not reach deployhook at ${off.url}: is the daemon running\\? \\(connect ECONNREFUSED .*\\)$`));
  });

  it('reaches the daemon at api.url whether the token comes from the config, --token or DEPLOYHOOK_TOKEN', async () => {
    const on = await setup(['true']);
    // The listen address names a port nothing listens on: only api.url leads to the daemon.
    const client = join(on.dir, 'client.yml');
    await writeConfigFile(client, { listen: '127.0.0.1:1', api: { token_env: 'API_TOKEN', url: on.url } });
    const { API_TOKEN: _unused, ...withoutToken } = ENV;
    const ways = [
      await runCli(['jobs', '--config', client], { env: ENV }),
      await runCli(['jobs', '--config', client, '--token', TOKEN], { env: withoutToken }),
      await runCli(['jobs', '--config', client], { env: { ...withoutToken, DEPLOYHOOK_TOKEN: TOKEN } }),
    ];
    for (const result of ways) {
      expect(result.stderr).toBe('');
      expect(result.exitCode).toBe(0);
      expect(result.stdout.split('\n')[0]).toMatch(/^JOB\s+STATE\s+REPO/);
    }
  });

  it('rolls back to an older commit with deploy --sha, shows it in jobs and runs, and keeps history across a restart', async () => {
    const context = await setup(['cat', 'v.txt']);
    const old = await context.remote.commit({ 'v.txt': 'old\n' });
    const tip = await context.remote.commit({ 'v.txt': 'new\n' });
    const state = join(context.dir, 'state');
    expect(await waitForRun(state, 'app', await push(context.url, tip))).toMatchObject({ status: 'succeeded', deployedSha: tip });

    const rolled = await cli(context, 'deploy', 'app', '--sha', old);
    expect(rolled.stderr).toBe('');
    const id = /queued run ([0-9a-z]{26}) of job app: exactly ([0-9a-f]{40})/.exec(rolled.stdout);
    expect(id?.[2]).toBe(old);
    const rollback = await waitForRun(state, 'app', id?.[1] ?? '');
    expect(rollback).toMatchObject({ status: 'succeeded', sha: old, deployedSha: old, exact: true, trigger: { type: 'manual' } });
    expect(rollback.trigger.requestedBy).toMatch(/^api: .+@.+$/);
    expect(await git(join(state, 'checkouts', 'app'), 'rev-parse', 'HEAD')).toBe(old);
    expect(await readFile(join(state, 'checkouts', 'app', 'v.txt'), 'utf8')).toBe('old\n');

    const jobs = await cli(context, 'jobs');
    expect(jobs.stdout.split('\n')[0]).toMatch(/^JOB\s+STATE\s+REPO\s+LAST RUN\s+DEPLOYED\s+SINCE$/);
    expect(jobs.stdout).toMatch(new RegExp(`^app\\s+idle\\s+acme/app\\s+succeeded \\d+s ago\\s+${old.slice(0, 8)}\\s+`, 'm'));
    const runs = await cli(context, 'runs', '--job', 'app');
    expect(runs.stdout).toMatch(new RegExp(`^${rollback.id}\\s+app\\s+succeeded\\s+manual\\s+main\\s+${old.slice(0, 8)}\\s+${old.slice(0, 8)}`, 'm'));
    expect(runs.stdout.trim().split('\n')).toHaveLength(3);
    // A commit as the tables show it: the start of one that a run of the job was for.
    expect((await cli(context, 'deploy', 'app', '--sha', tip.slice(0, 8))).stdout).toMatch(new RegExp(`^queued run [0-9a-z]{26} of job app: exactly ${tip}$`, 'm'));
    const unknown = await cli(context, 'deploy', 'app', '--sha', 'abcdef0');
    expect(unknown).toMatchObject({ exitCode: 1, stderr: 'deployhook: No run of job app that deployhook keeps has a commit starting with abcdef0: give the whole 40-character commit id (git rev-parse abcdef0 in a clone) (HTTP 400)' });
    expect(await cli(context, 'deploy', 'app', '--sha', old.slice(0, 6))).toMatchObject({ exitCode: 1, stderr: expect.stringMatching(/^deployhook: Expected a commit id of at least 7 characters/) });

    const deployTip = await cli(context, 'deploy', 'app', '--ref', 'main');
    expect(deployTip.stdout).toMatch(/the tip of refs\/heads\/main/);

    const metrics = await (await api(context.url, '/metrics')).text();
    expect(metrics).toMatch(/deployhook_runs_total\{job="app",status="succeeded"\} [2-9]/);
    expect(metrics).toContain('deployhook_deliveries_total{provider="github",outcome="queued"} 1');

    await daemon?.stop();
    // A clean stop puts every file in place and empties the runs' journal: the next start replays nothing.
    expect(await readdir(join(state, 'journal', 'runs'))).toEqual([]);
    expect(await readRun(state, 'app', rollback.id)).toMatchObject({ status: 'succeeded' });
    daemon = await startServe(['--config', context.config], { env: ENV });
    const after = (await (await api(`http://127.0.0.1:${daemon.port}`, '/api/runs?job=app&limit=10')).json()) as { runs: RunRecord[] };
    expect(after.runs.map((run) => run.id)).toContain(rollback.id);
    expect((await fetch(`http://127.0.0.1:${daemon.port}/readyz`)).status).toBe(200);
  });

  it("deploys a job's own branch when no ref is named, never a default branch of the remote's that the job does not follow", async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const main = await remote.commit({ 'v.txt': 'main\n' });
    const staging = await remote.commit({ 'v.txt': 'staging\n' }, 'staging', 'staging');
    const job = { provider: 'github', repo: 'acme/app', secret_env: 'SECRET', remote: remote.bare, command: ['true'] };
    const jobs = [
      { ...job, name: 'staging', branches: ['staging'] },
      { ...job, name: 'trunk', branches: ['main', 'release/*'] },
      { ...job, name: 'releases', branches: ['release/*'] },
      { ...job, name: 'tagged', tags: ['v*'] },
    ];
    const config = join(dir, 'deployhook.yml');
    await writeConfigFile(config, { api: { token_env: 'API_TOKEN' }, jobs });
    daemon = await startServe(['--config', config], { env: ENV });
    const context = { dir, config, remote, url: `http://127.0.0.1:${daemon.port}` };
    const state = join(dir, 'state');
    const deployed = async (name: string) => {
      const result = await cli(context, 'deploy', name);
      expect(result.stderr).toBe('');
      return waitForRun(state, name, /queued run ([0-9a-z]{26})/.exec(result.stdout)?.[1] ?? '');
    };

    // The remote's HEAD is main. A job that names one branch deploys that branch.
    expect(await deployed('staging')).toMatchObject({ status: 'succeeded', ref: 'refs/heads/staging', sha: staging, deployedSha: staging });
    // Several: the remote's HEAD branch, when the job deploys it.
    expect(await deployed('trunk')).toMatchObject({ status: 'succeeded', ref: 'refs/heads/main', sha: main, deployedSha: main });
    // Otherwise the operator is asked to name the ref, and nothing is queued.
    expect(await cli(context, 'deploy', 'releases')).toMatchObject({
      exitCode: 1,
      stderr: "deployhook: Expected a ref to deploy: job releases deploys branches release/*, and the remote's HEAD branch main is not one of them: name the ref (--ref <branch>). (HTTP 400)",
    });
    const runs = (await (await api(context.url, '/api/runs?job=releases')).json()) as { runs: RunRecord[] };
    expect(runs.runs).toEqual([]);
    expect((await cli(context, 'deploy', 'tagged')).stderr).toBe(
      "deployhook: Expected a ref to deploy: job tagged deploys tags v*, and the remote's HEAD branch main is not one of them: name the ref (--ref <branch>; a tag as --ref refs/tags/<name>). (HTTP 400)",
    );
    // `send` names the ref it signs, so a commit alone does not make another branch's push.
    const sent = await runCli(['send', 'releases', '--sha', main, '--config', config], { env: ENV });
    expect(sent).toMatchObject({ exitCode: 1, stderr: expect.stringContaining("the remote's HEAD branch main is not one of them: name the ref (--ref <branch>).") });
    // A rollback names its commit: the remote's HEAD branch then only names the deploy, whatever the job's branches.
    const rollback = await cli(context, 'deploy', 'releases', '--sha', main);
    expect(rollback.stderr).toBe('');
    const rolledBack = await waitForRun(state, 'releases', /queued run ([0-9a-z]{26})/.exec(rollback.stdout)?.[1] ?? '');
    expect(rolledBack).toMatchObject({ status: 'succeeded', ref: 'refs/heads/main', sha: main, deployedSha: main, exact: true });
  });

  it('deploys an annotated tag by name: the commit it names, with DEPLOYHOOK_TAG set', async () => {
    const context = await setup(['sh', '-c', 'printf "%s" "$DEPLOYHOOK_TAG" > "$WORK/tag"']);
    const state = join(context.dir, 'state');
    const tagged = await context.remote.commit({ 'v.txt': 'tagged\n' });
    await context.remote.commit({ 'v.txt': 'later\n' });
    // An annotated tag: the remote lists the tag object, and its commit only as the peeled `^{}` line.
    await git(context.remote.bare, 'tag', '-a', 'v1', '-m', 'release v1', tagged);
    const deployed = await cli(context, 'deploy', 'app', '--ref', 'refs/tags/v1');
    expect(deployed.stderr).toBe('');
    const id = /queued run ([0-9a-z]{26}) of job app/.exec(deployed.stdout)?.[1] ?? '';
    expect(await waitForRun(state, 'app', id)).toMatchObject({ status: 'succeeded', sha: tagged, deployedSha: tagged, ref: 'refs/tags/v1', tag: 'v1' });
    expect(await git(join(state, 'checkouts', 'app'), 'rev-parse', 'HEAD')).toBe(tagged);
    expect(await readFile(join(context.dir, 'tag'), 'utf8')).toBe('v1');

    // A ref the remote does not have, and a remote that cannot be read: told, nothing queued.
    const missing = await cli(context, 'deploy', 'app', '--ref', 'refs/tags/v2');
    expect(missing).toMatchObject({ exitCode: 1, stderr: `deployhook: Expected refs/tags/v2 on the remote ${context.remote.bare}, but it is not there: name the commit (--sha). (HTTP 400)` });
    await rename(context.remote.bare, `${context.remote.bare}.moved`);
    const unreadable = await cli(context, 'deploy', 'app', '--ref', 'main');
    // git's own reason is passed on.
    expect(unreadable).toMatchObject({ exitCode: 1, stderr: `deployhook: Could not read refs/heads/main from the remote ${context.remote.bare} (git ls-remote exited with code 128: fatal: '${context.remote.bare}' does not appear to be a git repository): can this machine reach it, with the job's key or token? Or name both the branch (--ref) and the commit (--sha), and the remote is not asked. (HTTP 400)` });
    await rename(`${context.remote.bare}.moved`, context.remote.bare);
    const runs = (await (await api(context.url, '/api/runs?job=app')).json()) as { runs: RunRecord[] };
    expect(runs.runs).toHaveLength(1);
  });

  it('says why a run that never started has no log, and `logs -f` exits 1 for it', async () => {
    const context = await setup(['sh', '-c', 'touch "$WORK/started"; while [ ! -e "$WORK/release" ]; do sleep 0.1; done']);
    await push(context.url, await context.remote.commit({ 'v.txt': '1\n' }));
    await until('the first run to start', async () => (await readdir(context.dir)).includes('started'));
    const queued = await push(context.url, await context.remote.commit({ 'v.txt': '2\n' }));
    const followed = cli(context, 'logs', queued, '-f');
    expect((await cli(context, 'cancel', queued)).stdout).toBe(`cancelling run ${queued} of job app (it was queued)`);

    const why = `run ${queued} of job app is cancelled and has no output: cancelled by an operator through the API`;
    expect(await followed).toMatchObject({ exitCode: 1, stdout: '', stderr: why });
    expect(await cli(context, 'logs', queued)).toMatchObject({ exitCode: 0, stdout: '', stderr: why });
    await writeFile(join(context.dir, 'release'), '');
  });

  it('follows a queued run\'s log live until it ends, and cancel stops a running command\'s whole process group', async () => {
    // The first run leaves a grandchild that would run for 30 s; later ones end at once. (Not keyed
    // on the commit: the first run may already converge on the second commit.)
    const script = `echo "begin $DEPLOYHOOK_SHA"; if [ ! -e "$WORK/first" ]; then touch "$WORK/first"; sh -c 'echo $$ > "$WORK/grandchild.pid"; sleep 30' & fi; sleep 1; echo "end $DEPLOYHOOK_SHA"; wait`;
    const context = await setup(['sh', '-c', script]);
    const first = await context.remote.commit({ 'v.txt': '1\n' });
    const firstRun = await push(context.url, first);
    // A push that arrives before the first run starts would supersede it: wait until it runs.
    await until('the first run to start its grandchild', async () => (await readFile(join(context.dir, 'grandchild.pid'), 'utf8').catch(() => '')) !== '');
    const second = await context.remote.commit({ 'v.txt': '2\n' });
    const secondRun = await push(context.url, second);
    expect((await runRecord(context.url, secondRun)).status).toBe('queued');

    const followed = cli(context, 'logs', secondRun, '-f');
    const grandchild = Number(await readFile(join(context.dir, 'grandchild.pid'), 'utf8'));
    const cancelled = await cli(context, 'cancel', firstRun);
    expect(cancelled.stdout).toBe(`cancelling run ${firstRun} of job app (it was running)`);
    expect(await waitForRun(join(context.dir, 'state'), 'app', firstRun)).toMatchObject({ status: 'cancelled' });
    await until('the grandchild to be gone', () => !isRunning(grandchild));

    const log = await followed;
    expect(log.exitCode).toBe(0);
    expect(log.stdout).toContain(`[deployhook] run ${secondRun} of job app`);
    expect(log.stdout).toContain(`end ${second}`);
    expect(log.stdout.trimEnd().split('\n').at(-1)).toMatch(/^\[deployhook\] finished: succeeded/);
    expect((await cli(context, 'cancel', secondRun)).stderr).toMatch(/only queued or running runs can be cancelled \(HTTP 409\)/);
  });

  it('sends a log from a byte offset, follows a log whose file is deleted under it to its end, and answers HEAD', async () => {
    const context = await setup(['sh', '-c', 'echo "step 1"; while [ ! -e "$WORK/gate" ]; do sleep 0.1; done; echo "step 2"']);
    const id = await push(context.url, await context.remote.commit({ 'v.txt': '1\n' }));
    const logOf = (query = '') => api(context.url, `/api/runs/${id}/log${query}`);
    await until('the first step in the log', async () => (await runLog(context.url, id)).includes('step 1\n'));

    const followed = await logOf('?follow=1');
    expect(followed.headers.get('x-accel-buffering')).toBe('no');
    const reader = followed.body!.getReader();
    let seen = '';
    while (!seen.includes('step 1\n')) seen += Buffer.from((await reader.read()).value ?? []).toString();
    // What pruning the run does to its log while it is followed.
    const run = await runRecord(context.url, id);
    const whole = await readFile(run.logPath);
    const head = await api(context.url, `/api/runs/${id}/log?follow=1`, TOKEN, { method: 'HEAD' });
    expect([head.status, head.headers.get('content-type'), await head.text()]).toEqual([200, 'text/plain; charset=utf-8', '']);
    await rm(run.logPath);
    await writeFile(join(context.dir, 'gate'), '');
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      seen += Buffer.from(value).toString();
    }
    expect(seen).toMatch(/step 1\n(.|\n)*step 2\n(.|\n)*\[deployhook\] finished: succeeded/);
    expect(seen.startsWith(whole.toString())).toBe(true);

    await writeFile(run.logPath, seen);
    expect(await (await logOf(`?offset=${whole.length}`)).text()).toBe(seen.slice(whole.length));
    expect(await (await logOf(`?offset=${seen.length + 10}`)).text()).toBe('');
    for (const offset of ['-1', 'x', '1e3', '']) expect((await logOf(`?offset=${offset}`)).status, offset).toBe(400);
  });

  it('follows a log across a crash and restart of the daemon from the bytes it has, says so, and names the run that takes an interrupted one\'s place', async () => {
    const script = 'echo "begin $DEPLOYHOOK_SHA"; while [ ! -e "$WORK/gate" ]; do sleep 0.1; done; echo "end $DEPLOYHOOK_SHA"';
    const context = await setup(['sh', '-c', script], undefined, {}, `127.0.0.1:${await freePort()}`);
    const first = await push(context.url, await context.remote.commit({ 'v.txt': '1\n' }));
    const state = (id: string) => runRecord(context.url, id);
    await until('the first run to start', async () => (await state(first)).status === 'running');
    const second = await context.remote.commit({ 'v.txt': '2\n' });
    const queued = await push(context.url, second);
    const follow = (id: string, env: Record<string, string> = ENV) => execa('node', [CLI, 'logs', id, '-f', '--config', context.config, '--url', context.url], { env, reject: false });
    // node's fetch says when the daemon has answered (NODE_DEBUG=fetch, on stderr): a follower
    // that never had an answer takes a lost connection for a daemon that is not running.
    const followQueued = follow(queued, { ...ENV, NODE_DEBUG: 'fetch' });
    let queuedSaid = '';
    followQueued.stderr?.on('data', (chunk: Buffer) => (queuedSaid += chunk.toString()));
    const followFirst = follow(first);
    let printed = '';
    followFirst.stdout?.on('data', (chunk: Buffer) => (printed += chunk.toString()));
    await until('the first run\'s follower to print its command\'s first line', () => printed.includes('begin '));
    await until('the queued run\'s follower to have its answer', () => /received response to GET \S*\/log\?follow=1/.test(queuedSaid));

    // A crash: the daemon is gone mid-run; the next start marks the run interrupted and, with
    // a newer run queued after it, leaves the deploy to that one.
    await daemon?.stop('SIGKILL');
    await writeFile(join(context.dir, 'gate'), '');
    daemon = await startServe(['--config', context.config], { env: ENV });

    const lost = /^Could not reach deployhook at http:\/\/127\.0\.0\.1:\d+( \(.+\))?; trying again for up to 60 s$/m;
    const interrupted = await followFirst;
    expect(interrupted.exitCode, interrupted.stderr).toBe(1);
    expect(interrupted.stderr).toMatch(lost);
    expect(await state(first)).toMatchObject({ status: 'interrupted', supersededBy: queued });
    expect(interrupted.stderr.trim().split('\n').at(-1)).toBe(
      `run ${first} of job app is interrupted: the daemon stopped while this run was in progress; not repeated: run ${queued} came after it and took its place; follow that one: deployhook logs ${queued} -f`,
    );
    // Its log once, as it is on disk: what came before the crash, then the rest from there on.
    const firstLog = await runLog(context.url, first);
    expect(firstLog).toMatch(/^begin [0-9a-f]{40}\n(.|\n)*the daemon stopped while this run was in progress/m);
    expect(interrupted.stdout).toBe(firstLog.trimEnd());

    const log = await followQueued;
    expect(log.exitCode, log.stderr).toBe(0);
    expect(log.stderr).toMatch(lost);
    expect(log.stdout.match(/^\[deployhook\] run \w+ of job app$/gm)).toEqual([`[deployhook] run ${queued} of job app`]);
    expect(log.stdout).toContain(`end ${second}`);
    expect(log.stdout.trimEnd().split('\n').at(-1)).toMatch(/^\[deployhook\] finished: succeeded/);
    expect(log.stdout).toBe((await runLog(context.url, queued)).trimEnd());
  });

  it('tells a URL with a password, and an answer that is not the API, in one line each, and ends quietly when its reader has read enough', async () => {
    const context = await setup(['sh', '-c', 'seq 1 100000']);
    const id = await push(context.url, await context.remote.commit({ 'v.txt': '1\n' }));
    await waitForRun(join(context.dir, 'state'), 'app', id);
    const withPassword = await runCli(['jobs', '--url', 'http://operator:hunter2@127.0.0.1:1', '--token', TOKEN], { env: ENV });
    expect(withPassword).toMatchObject({ exitCode: 1, stderr: "deployhook: Expected the daemon's URL without a user name or password (--url, api.url): the API token signs in (--token, $DEPLOYHOOK_TOKEN, api.token_env)" });
    expect(withPassword.stderr).not.toContain('hunter2');
    expect(await runCli(['jobs', '--url', '127.0.0.1:9000', '--token', TOKEN], { env: ENV })).toMatchObject({ exitCode: 1, stderr: 'deployhook: Expected the daemon\'s URL as http://host:port or https://host:port (--url, api.url), but got "127.0.0.1:9000"' });
    // The token from a file (not on the command line, where other users can read it).
    const tokenFile = join(context.dir, 'token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const listed = await runCli(['jobs', '--url', context.url, '--token-file', tokenFile], { env: { PATH: ENV.PATH } });
    expect(listed.exitCode).toBe(0);
    expect(listed.stdout).toMatch(/^app +idle +acme\/app /m);
    expect(await runCli(['jobs', '--url', context.url, '--token-file', join(context.dir, 'nope')], { env: { PATH: ENV.PATH } })).toMatchObject({ exitCode: 1, stderr: `deployhook: --token-file: expected a readable secret file at ${join(context.dir, 'nope')}, got ENOENT` });
    // Read as the daemon reads api.token_file: a token it could hold but no request can carry is refused before asking.
    const unsendable = 'deployhook: --token-file: expected the token as visible ASCII characters only, as an HTTP header carries them (no space, no second line; saved as UTF-8 or ASCII)';
    for (const text of [Buffer.from(`${TOKEN}\n`, 'utf16le'), `${TOKEN}\nsecond line\n`, `${TOKEN} \n`]) {
      await writeFile(tokenFile, text);
      expect(await runCli(['jobs', '--url', context.url, '--token-file', tokenFile], { env: { PATH: ENV.PATH } })).toMatchObject({ exitCode: 1, stderr: unsendable });
    }
    await writeFile(tokenFile, `${TOKEN}\r\n`);
    expect(await runCli(['jobs', '--url', context.url, '--token-file', tokenFile], { env: { PATH: ENV.PATH } })).toMatchObject({ exitCode: 0 });
    expect(await runCli(['jobs', '--url', context.url, '--token', `${TOKEN} x`], { env: { PATH: ENV.PATH } })).toMatchObject({ exitCode: 1, stderr: unsendable.replace('--token-file', '--token') });
    expect(await runCli(['jobs', '--url', context.url], { env: { PATH: ENV.PATH, DEPLOYHOOK_TOKEN: `${TOKEN}\n` } })).toMatchObject({ exitCode: 1, stderr: unsendable.replace('--token-file', '$DEPLOYHOOK_TOKEN') });
    // No token given, and no config where the CLI looks for one.
    expect(await runCli(['jobs', '--url', context.url, '--config', join(context.dir, 'nowhere.yml')], { env: { PATH: ENV.PATH } })).toMatchObject({
      exitCode: 1,
      stderr: `deployhook: Could not read the config ${join(context.dir, 'nowhere.yml')} (ENOENT), where the CLI finds the daemon's address and API token: pass --config with the daemon's config, or --url and --token-file (or $DEPLOYHOOK_TOKEN)`,
    });
    // A proxy's own page where the API was expected.
    const other = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><p>Welcome to nginx!</p>'));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const page = await runCli(['jobs', '--url', `http://127.0.0.1:${(other.address() as AddressInfo).port}`, '--token', TOKEN], { env: ENV });
    other.close();
    expect(page.exitCode).toBe(1);
    expect(page.stderr.trim().split('\n')).toHaveLength(1);
    expect(page.stderr).toMatch(/^deployhook: Expected JSON from deployhook's API at .* but got HTTP \d+ text\/html; charset=utf-8: is this the daemon's URL \(--url, api\.url\)\?/);

    const piped = await execa('bash', ['-c', `node "$0" logs ${id} --config "$1" --url "$2" | head -c 100 >/dev/null; echo "\${PIPESTATUS[0]}"`, CLI, context.config, context.url], { env: ENV, reject: false });
    expect(piped.stderr).toBe('');
    expect(piped.stdout).toBe('141');
  });

  it.skipIf(process.getuid?.() !== 0 && !process.env.CI)('deploy names a user without a user name (a container\'s uid) by number', async () => {
    expect(process.getuid?.(), 'this test needs root, to run the CLI as a uid that has no passwd entry').toBe(0);
    const context = await setup(['true']);
    await context.remote.commit({ 'v.txt': '1\n' });
    const deployed = await execa('setpriv', ['--reuid=54321', '--regid=54321', '--clear-groups', 'node', CLI, 'deploy', 'app', '--url', context.url, '--token', TOKEN], { env: { PATH: ENV.PATH }, reject: false });
    expect(deployed.stderr).toBe('');
    const id = /^queued run (\w+) of job app: /.exec(deployed.stdout)?.[1] ?? '';
    expect((await runRecord(context.url, id)).trigger.requestedBy).toBe(`api: uid 54321@${hostname()}`);
  });

  it('deploy --follow prints the run\'s log and exits with how the run ended', async () => {
    const context = await setup(['sh', '-c', 'echo "deploying $DEPLOYHOOK_SHA"; test -e "$WORK/ok"']);
    const sha = await context.remote.commit({ 'v.txt': '1\n' });
    const failed = await cli(context, 'deploy', 'app', '--follow');
    expect(failed.exitCode).toBe(1);
    const id = /^queued run (\w+) of job app: the tip of refs\/heads\/main/.exec(failed.stderr)?.[1] ?? '';
    expect(failed.stdout).toContain(`[deployhook] run ${id} of job app`);
    expect(failed.stdout).toMatch(new RegExp(`^deploying ${sha}$`, 'm'));
    expect(failed.stdout.split('\n').at(-1)).toMatch(/^\[deployhook\] finished: failed, exit code 1/);
    // Checked out, but its command failed: not shown as deployed.
    const row = (await cli(context, 'runs', '--job', 'app')).stdout.split('\n').find((line) => line.startsWith(id));
    expect(row).toMatch(new RegExp(`^${id}\\s+app\\s+failed\\s+manual\\s+main\\s+${sha.slice(0, 8)}\\s+-\\s+`));

    await writeFile(join(context.dir, 'ok'), '');
    const succeeded = await cli(context, 'deploy', 'app', '-f');
    expect(succeeded.exitCode).toBe(0);
    expect(succeeded.stdout.split('\n').at(-1)).toMatch(/^\[deployhook\] finished: succeeded, exit code 0/);
  });

  it('runs pages with --before', async () => {
    const context = await setup(['true']);
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      ids.push(await push(context.url, await context.remote.commit({ 'v.txt': `${n}\n` })));
      await waitForRun(join(context.dir, 'state'), 'app', ids.at(-1) ?? '');
    }
    const page = async (...args: string[]) => (await cli(context, 'runs', '--limit', '2', ...args)).stdout.split('\n').slice(1).map((line) => line.split(' ')[0]);
    expect(await page()).toEqual([ids[2], ids[1]]);
    expect(await page('--before', ids[1] ?? '')).toEqual([ids[0]]);
    // A misspelt job is not a job without runs.
    expect(await cli(context, 'runs', '--job', 'ap')).toMatchObject({ exitCode: 1, stderr: 'deployhook: no job named "ap" (HTTP 404)' });
  });

  it('send exits 0 only when the job queued a run', async () => {
    const context = await setup(['true']);
    const sha = await context.remote.commit({ 'v.txt': '1\n' });
    await git(context.remote.work, 'push', '--quiet', 'origin', 'HEAD:refs/heads/other');
    const send = (...args: string[]) => runCli(['send', 'app', ...args, '--config', context.config, '--url', `${context.url}/hooks/github`], { env: ENV });
    const queued = await send();
    expect(queued.exitCode).toBe(0);
    expect(queued.stdout).toMatch(/^queued run \w+ of job app; log: /m);
    // Verified, but for a branch the job does not deploy.
    const ignored = await send('--ref', 'other', '--sha', sha);
    expect(ignored.stdout.split('\n')).toEqual([`sent a signed push of refs/heads/other at ${sha} to ${context.url}/hooks/github: HTTP 200`, expect.stringMatching(/^nothing queued: /)]);
    expect(ignored.exitCode).toBe(1);

    // A config whose job has another name than the daemon's: the daemon queues its own job.
    const other = join(context.dir, 'other.yml');
    const config = yaml.load(await readFile(context.config, 'utf8')) as { jobs: Array<{ name: string }> };
    await writeFile(other, yaml.dump({ ...config, jobs: config.jobs.map((job) => ({ ...job, name: 'site' })) }));
    const elsewhere = await runCli(['send', 'site', '--config', other, '--url', `${context.url}/hooks/github`], { env: ENV });
    expect(elsewhere.stdout.split('\n')).toEqual([
      expect.stringMatching(/^sent a signed push of refs\/heads\/main at [0-9a-f]{40} to .*: HTTP 202$/),
      expect.stringMatching(/^queued run \w+ of job app; log: /),
      `nothing queued for job site: the daemon at ${context.url}/hooks/github queued only other jobs' runs (is it running with another config than ${other}?)`,
    ]);
    expect(elsewhere.exitCode).toBe(1);
  });
});
