import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'recovery-secret-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

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
    const warning = hook.logLines.map((line) => JSON.parse(line) as Record<string, unknown>).find((line) => line.msg === 'skipped a run record that could not be read');
    expect(String(warning?.problem)).toContain(`${broken}.json: not a valid run record; moved aside to ${broken}.json.corrupt`);
    expect((await readdir(runs)).sort()).toEqual([`${broken}.json.corrupt`]);

    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    expect(reply.status).toBe(202);
    expect(await waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '')).toMatchObject({ status: 'succeeded' });
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
});
