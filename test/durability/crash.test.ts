import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { startServe } from '../helpers/cli.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { isRunning } from '../helpers/processes.js';
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
    await writeFile(config, yaml.dump({ listen: '127.0.0.1:0', state_dir: 'state', log_dir: 'logs', jobs: [{ name: 'slow', provider: 'github', repo: 'acme/slow', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, kill_grace: '1s' }] }));
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
        if (run?.status === 'interrupted') expect(byId.get(run.retriedBy ?? '')?.trigger.retryOf).toBe(id);
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
    await writeFile(config, yaml.dump({ listen: '127.0.0.1:0', state_dir: 'state', log_dir: 'logs', jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'], kill_grace: '1s' }] }));
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
