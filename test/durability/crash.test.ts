import { chmod, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startServe } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote, git, REPACK_EVERY_FETCH } from '../helpers/git-repo.js';
import { isRunning, statFields } from '../helpers/processes.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { runsOf } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'crash-test-secret-0123456789abcd';

describe('a daemon killed with SIGKILL in the middle of a run', () => {
  it('accounts for every acknowledged push after a restart, ends on the newest commit, and never overlaps runs', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const trace = join(dir, 'trace.txt');
    await writeFile(trace, '');
    const config = join(dir, 'deployhook.yml');
    // The command records its own start and end; a run that is killed never writes its end.
    const command = ['sh', '-c', `echo "start $DEPLOYHOOK_RUN_ID" >> ${trace}; sleep 2; echo "end $DEPLOYHOOK_RUN_ID" >> ${trace}`];
    await writeConfigFile(config, { jobs: [{ name: 'slow', provider: 'github', repo: 'acme/slow', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, kill_grace: '1s' }] });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET };

    const commits: string[] = [];
    for (let i = 0; i < 6; i += 1) commits.push(await remote.commit({ 'n.txt': `${i}\n` }));
    const acknowledged: string[] = [];
    const pushAll = async (port: number, shas: string[]) => {
      for (const sha of shas) {
        const body = JSON.stringify(githubPush({ repo: 'acme/slow', after: sha }));
        const response = await fetch(`http://127.0.0.1:${port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
        expect(response.status).toBe(202);
        acknowledged.push(...((await response.json()) as { runs: Array<{ id: string }> }).runs.map((run) => run.id));
      }
    };

    const first = await startServe(['--config', config], { env });
    await pushAll(first.port, commits.slice(0, 3));
    await until('the first run to start its command', async () => (await readFile(trace, 'utf8')).includes('start '));
    await pushAll(first.port, commits.slice(3));
    expect(await first.stop('SIGKILL')).toBeUndefined();

    const second = await startServe(['--config', config], { env });
    try {
      const state = join(dir, 'state');
      await until('every run to reach a final status', async () => {
        const runs = await runsOf(state, 'slow');
        return runs.length > 0 && runs.every((run) => ['succeeded', 'superseded', 'interrupted', 'failed'].includes(run.status));
      }, 30_000);
      const runs = await runsOf(state, 'slow');
      const byId = new Map(runs.map((run) => [run.id, run]));
      for (const id of acknowledged) {
        const run = byId.get(id);
        expect(run, `acknowledged run ${id} has a record`).toBeDefined();
        expect(['succeeded', 'superseded', 'interrupted']).toContain(run?.status);
        // Interrupted: repeated, or left to the newer run queued after it, which deployed instead.
        if (run?.status === 'interrupted' && run.retriedBy !== undefined) expect(byId.get(run.retriedBy)?.trigger.retryOf).toBe(id);
        else if (run?.status === 'interrupted') expect(byId.get(run.supersededBy ?? '')).toMatchObject({ status: 'succeeded', deployedSha: commits.at(-1) });
      }
      expect(runs.filter((run) => run.status === 'failed')).toEqual([]);
      expect(runs.filter((run) => run.status === 'interrupted')).toHaveLength(1);
      const last = runs.filter((run) => run.status === 'succeeded').at(-1);
      expect(last?.deployedSha).toBe(commits.at(-1));
      expect(await git(join(dir, 'state', 'checkouts', 'slow'), 'rev-parse', 'HEAD')).toBe(commits.at(-1));

      // No overlap: after a run starts, nothing else starts until it has ended, or it was killed
      // (then it never writes its end at all).
      const lines = (await readFile(trace, 'utf8')).trim().split('\n');
      let open: string | undefined;
      const ended = new Set(lines.filter((line) => line.startsWith('end ')).map((line) => line.slice(4)));
      for (const line of lines) {
        const [event, id = ''] = line.split(' ');
        if (event === 'start') {
          expect(open, `run ${id} started while ${open} was still running`).toBeUndefined();
          open = ended.has(id) ? id : undefined;
        } else {
          expect(id).toBe(open);
          open = undefined;
        }
      }
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

describe('a daemon killed with SIGKILL while git works in a checkout', () => {
  it("stops what is left of git's process group before the run is repeated", async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const config = join(dir, 'deployhook.yml');
    await writeConfigFile(config, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'], kill_grace: '1s' }] });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET };
    const state = join(dir, 'state');
    const checkout = join(state, 'checkouts', 'app');
    const push = async (port: number, sha: string) => {
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const response = await fetch(`http://127.0.0.1:${port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
      expect(response.status).toBe(202);
      return ((await response.json()) as { runs: Array<{ id: string }> }).runs.map((run) => run.id);
    };
    const first = await startServe(['--config', config], { env });
    let leftover: number | undefined;
    let second: Awaited<ReturnType<typeof startServe>> | undefined;
    try {
      const [warm] = await push(first.port, await remote.commit({ 'n.txt': '1\n' }));
      await until('the first deploy to succeed', async () => (await runsOf(state, 'app')).some((run) => run.id === warm && run.status === 'succeeded'));
      // git in the checkout now hangs after its checkout step, inside the group the daemon started for it.
      const hookPid = join(dir, 'hook.pid');
      const hook = join(checkout, '.git', 'hooks', 'post-checkout');
      await writeFile(hook, `#!/bin/sh\necho $$ > ${hookPid}\nexec sleep 600\n`);
      await chmod(hook, 0o755);
      const newest = await remote.commit({ 'n.txt': '2\n' });
      await push(first.port, newest);
      await until('git to reach the hook', async () => (await readFile(hookPid, 'utf8').catch(() => '')).trim() !== '');
      leftover = Number((await readFile(hookPid, 'utf8')).trim());
      const pid = leftover;
      // The record names git's group once it is saved.
      await until("the running record to name git's process group", async () => (await runsOf(state, 'app')).some((run) => run.status === 'running' && run.pgid !== undefined));
      expect(await first.stop('SIGKILL')).toBeUndefined();
      expect(isRunning(pid), 'git outlives the daemon killed with SIGKILL').toBe(true);
      await rm(hook);

      second = await startServe(['--config', config], { env });
      await until('the leftover git to be stopped', () => !isRunning(pid), 10_000);
      await until('the repeat to deploy the newest commit', async () => (await runsOf(state, 'app')).some((run) => run.status === 'succeeded' && run.deployedSha === newest));
      const runs = await runsOf(state, 'app');
      expect(runs.filter((run) => run.status === 'interrupted')).toHaveLength(1);
      expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(newest);
    } finally {
      if (leftover !== undefined && isRunning(leftover)) process.kill(leftover, 'SIGKILL');
      await first.stop('SIGKILL');
      if (second) expect(await second.stop()).toBe(0);
    }
  });
});

describe("a daemon killed with SIGKILL during git's housekeeping after a run", () => {
  it('stops the housekeeping at the next start, before the job runs again in the checkout', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    // git packs on every fetch, so each start's first housekeeping has two packs to pack.
    const home = join(dir, 'home');
    await mkdir(home);
    await writeFile(join(home, '.gitconfig'), REPACK_EVERY_FETCH);
    const config = join(dir, 'deployhook.yml');
    await writeConfigFile(config, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: `file://${remote.bare}`, command: ['true'], kill_grace: '1s' }] });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET, HOME: home };
    const state = join(dir, 'state');
    const checkout = join(state, 'checkouts', 'app');
    const deploy = async (port: number, sha: string) => {
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const response = await fetch(`http://127.0.0.1:${port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
      expect(response.status).toBe(202);
      const [run] = ((await response.json()) as { runs: Array<{ id: string }> }).runs;
      await until('the deploy to succeed', async () => (await runsOf(state, 'app')).some((record) => record.id === run?.id && record.status === 'succeeded'));
      return run?.id ?? '';
    };
    const servers: Array<Awaited<ReturnType<typeof startServe>>> = [];
    let leftover: number | undefined;
    try {
      servers.push(await startServe(['--config', config], { env }));
      await deploy(servers[0]?.port ?? 0, await remote.commit({ 'n.txt': '1\n' }));
      expect(await servers[0]?.stop()).toBe(0);
      // git runs the pre-auto-gc hook before it packs: this one holds the housekeeping up.
      const hookPid = join(dir, 'hook.pid');
      const hook = join(checkout, '.git', 'hooks', 'pre-auto-gc');
      await writeFile(hook, `#!/bin/sh\necho $$ > ${hookPid}\nexec sleep 600\n`);
      await chmod(hook, 0o755);

      servers.push(await startServe(['--config', config], { env }));
      const run = await deploy(servers[1]?.port ?? 0, await remote.commit({ 'n.txt': '2\n' }));
      await until('the housekeeping to reach the hook', async () => (await readFile(hookPid, 'utf8').catch(() => '')).trim() !== '');
      leftover = Number((await readFile(hookPid, 'utf8')).trim());
      const pid = leftover;
      // The hook's process group: the housekeeping's.
      const group = Number(statFields(pid)?.[2]);
      await until("the finished run's record to name the housekeeping's group", async () => (await runsOf(state, 'app')).some((record) => record.id === run && record.pgid === group));
      expect(await servers[1]?.stop('SIGKILL')).toBeUndefined();
      expect(isRunning(pid), "git's housekeeping outlives the daemon killed with SIGKILL").toBe(true);
      await rm(hook);

      servers.push(await startServe(['--config', config], { env }));
      await until('the leftover housekeeping to be stopped', () => !isRunning(pid), 10_000);
      expect(servers[2]?.lines).toContainEqual(expect.objectContaining({ run, msg: "stopped git's housekeeping left running by a daemon that died after the run" }));
      // The record no longer names the group: no later start signals it again.
      expect((await runsOf(state, 'app')).find((record) => record.id === run)).not.toHaveProperty('pgid');
      const newest = await remote.commit({ 'n.txt': '3\n' });
      await deploy(servers[2]?.port ?? 0, newest);
      expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(newest);
    } finally {
      if (leftover !== undefined && isRunning(leftover)) process.kill(leftover, 'SIGKILL');
      for (const server of servers.slice(0, -1)) await server.stop('SIGKILL');
      if (servers.length === 3) expect(await servers[2]?.stop()).toBe(0);
    }
  });
});

describe('a daemon killed with SIGKILL while a capture thread writes a flood of output', () => {
  it('leaves a log that the restart closes with the first and the last half of max_log_bytes, exactly as the command wrote them', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'n.txt': '1\n' });
    const config = join(dir, 'deployhook.yml');
    const maxBytes = 8 * 1024 * 1024;
    // Floods once (numbered lines, so that any stretch of them can be checked), then, repeated after the restart, does nothing.
    const done = join(dir, 'flooded');
    const command = ['sh', '-c', `[ -e ${done} ] && exit 0; touch ${done}; seq 1 1000000000`];
    await writeConfigFile(config, { max_log_bytes: maxBytes, jobs: [{ name: 'flood', provider: 'github', repo: 'acme/flood', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command }] });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET };

    const first = await startServe(['--config', config], { env });
    const body = JSON.stringify(githubPush({ repo: 'acme/flood', after: sha }));
    const response = await fetch(`http://127.0.0.1:${first.port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
    expect(response.status).toBe(202);
    const [run] = ((await response.json()) as { runs: Array<{ id: string }> }).runs;
    const log = join(dir, 'logs', 'flood', `${run?.id ?? ''}.log`);
    // Well past the head and round both spill segments more than once.
    await until('the output to go round the spill segments', async () => (await stat(`${log}.tail-b`).catch(() => undefined))?.size === 64 + maxBytes / 2 && (await stat(`${log}.tail-a`).catch(() => undefined)) !== undefined, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await first.stop('SIGKILL')).toBeUndefined();

    const second = await startServe(['--config', config], { env });
    try {
      await until('the interrupted run to be closed', async () => (await runsOf(join(dir, 'state'), 'flood')).some((record) => record.id === run?.id && record.status === 'interrupted'), 30_000);
      const text = await readFile(log, 'latin1');
      const seq = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${String(from + i)}\n`).join('');
      const dropped = text.indexOf('\n[deployhook] ... output dropped here (past max_log_bytes); the end of it that was kept follows ...\n');
      const stopped = text.indexOf('\n[deployhook] the daemon stopped while this run was in progress (killed or crashed); the run is repeated\n');
      expect(dropped).toBeGreaterThan(0);
      expect(stopped).toBeGreaterThan(dropped);
      // The head: exactly the first half of max_log_bytes of the output (the run's own lines, git's, the command's).
      expect(dropped).toBe(maxBytes / 2);
      const outputStart = text.indexOf('\n1\n2\n3\n') + 1;
      const head = text.slice(outputStart, dropped);
      const lastWhole = Number(head.slice(0, head.lastIndexOf('\n')).split('\n').at(-1));
      expect(head.startsWith(seq(1, lastWhole))).toBe(true);
      // The tail: the last half of max_log_bytes the command wrote before the kill, one unbroken stretch of its lines.
      const tail = text.slice(dropped + text.slice(dropped).indexOf('follows ...\n') + 'follows ...\n'.length, stopped + 1);
      expect(tail.length).toBe(maxBytes / 2 + 1);
      const lines = tail.split('\n').slice(1, -2).map(Number);
      expect(lines.length).toBeGreaterThan(100_000);
      expect(lines.every((n, i) => i === 0 || n === (lines[i - 1] ?? 0) + 1)).toBe(true);
      expect(lines[0]).toBeGreaterThan(lastWhole);
    } finally {
      await second.stop();
    }
  });
});
