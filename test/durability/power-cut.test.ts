import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startServe } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { runsOf } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'power-cut-secret-0123456789abcd';

describe('a power cut right after pushes were acknowledged', () => {
  it('loses neither the runs nor the memory of the deliveries, although the files written for them were never fsynced', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const trace = join(dir, 'trace.txt');
    await writeFile(trace, '');
    const config = join(dir, 'deployhook.yml');
    const command = ['sh', '-c', `echo "start $DEPLOYHOOK_RUN_ID" >> ${trace}; sleep 2`];
    await writeConfigFile(config, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, kill_grace: '1s' }] });
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET };
    const first = await remote.commit({ 'n.txt': '1\n' });
    const second = await remote.commit({ 'n.txt': '2\n' });
    const pushes = await Promise.all(
      [first, second].map(async (sha) => {
        const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
        return { body, headers: await githubHeaders(body, SECRET) };
      }),
    );
    const post = async (port: number, push: { body: string; headers: Record<string, string> }) => {
      const response = await fetch(`http://127.0.0.1:${port}/hooks/github`, { method: 'POST', body: push.body, headers: push.headers });
      return { status: response.status, json: (await response.json()) as { runs: Array<{ id: string }>; duplicate?: boolean } };
    };

    const daemon = await startServe(['--config', config], { env });
    const acknowledged: string[] = [];
    const one = await post(daemon.port, pushes[0] as (typeof pushes)[0]);
    await until('the first run to start its command', async () => (await readFile(trace, 'utf8')).includes('start '));
    const two = await post(daemon.port, pushes[1] as (typeof pushes)[0]);
    expect([one.status, two.status]).toEqual([202, 202]);
    acknowledged.push(...one.json.runs.map((run) => run.id), ...two.json.runs.map((run) => run.id));
    expect(await daemon.stop('SIGKILL')).toBeUndefined();

    // None of the runs' files had been fsynced yet (that happens about a minute later): a power
    // cut may lose all of them. Only the runs' journal was on disk before each 202, and the
    // deliveries' log, which is on disk (O_DSYNC) before each 202 and has nothing else to lose.
    const state = join(dir, 'state');
    for (const name of await readdir(join(state, 'runs', 'app'))) await rm(join(state, 'runs', 'app', name));
    expect((await readdir(join(state, 'deliveries'))).every((name) => name.endsWith('.journal'))).toBe(true);

    const restarted = await startServe(['--config', config], { env });
    try {
      await until('every run to reach a final status', async () => {
        const runs = await runsOf(state, 'app');
        return runs.length > 0 && runs.every((run) => ['succeeded', 'superseded', 'interrupted'].includes(run.status));
      }, 30_000);
      const byId = new Map((await runsOf(state, 'app')).map((run) => [run.id, run]));
      for (const id of acknowledged) expect(byId.get(id), `acknowledged run ${id} has a record`).toBeDefined();
      expect(await git(join(state, 'checkouts', 'app'), 'rev-parse', 'HEAD')).toBe(second);
      const again = await post(restarted.port, pushes[1] as (typeof pushes)[0]);
      expect(again).toMatchObject({ status: 200, json: { duplicate: true, runs: [] } });
    } finally {
      expect(await restarted.stop()).toBe(0);
    }
  });
});
