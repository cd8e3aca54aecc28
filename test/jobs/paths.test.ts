import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git, type TestRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { readRun, runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'paths-secret-0123456789abcdef';
const TOKEN = 'paths-api-token-0123456789abcdef';
const ZERO = '0'.repeat(40);
/** Appends the commit it runs for to `$MARKER`: the side effect that shows whether the command ran. */
const RECORD_COMMIT = 'echo "$DEPLOYHOOK_SHA" >> "$MARKER"';

let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

interface Setup {
  dir: string;
  remote: TestRemote;
  /** Pushes a commit the way GitHub reports it; resolves with the queued run id per job. */
  push(fields: { after: string; before?: string; ref?: string }): Promise<Record<string, string>>;
  /** Waits for the run to end and returns its record and log. */
  finished(job: string, id: string): Promise<RunRecord & { log: string }>;
  /** The commits the job's command ran for, in order. */
  ran(job: string): Promise<string[]>;
  settings: Record<string, unknown>;
}

async function setup(jobs: Array<Record<string, unknown>>): Promise<Setup> {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const settings = {
    api: { token_env: 'API_TOKEN' },
    jobs: jobs.map((job) => ({
      provider: 'github',
      repo: 'acme/app',
      branches: ['main'],
      secret_env: 'SECRET',
      remote: remote.bare,
      paths: ['deploy/**'],
      command: ['sh', '-c', RECORD_COMMIT],
      timeout: '60s',
      ...job,
      env: { MARKER: join(dir, `${String(job.name)}.ran`), ...(job.env as Record<string, string> | undefined) },
    })),
  };
  hook = await startDaemon(dir, settings, { SECRET, API_TOKEN: TOKEN });
  return {
    dir,
    remote,
    settings,
    async push({ after, before = ZERO, ref }) {
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after, before, ...(ref !== undefined ? { ref } : {}) }));
      const reply = await (hook as TestDaemon).post('github', body, await githubHeaders(body, SECRET));
      expect(reply.status).toBe(202);
      return Object.fromEntries((reply.json.runs as Array<{ id: string; job: string }>).map((run) => [run.job, run.id]));
    },
    async finished(job, id) {
      const record = await waitForRun(join(dir, 'state'), job, id);
      // A run that never started (superseded) has no log.
      return { ...record, log: await readFile(record.logPath, 'utf8').catch(() => '') };
    },
    async ran(job) {
      const text = await readFile(join(dir, `${job}.ran`), 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean);
    },
  };
}

const short = (sha: string) => sha.slice(0, 7);
const api = async (path: string, init: RequestInit = {}) => fetch(`${hook?.url ?? ''}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });

describe('the paths filter', () => {
  it('skips a push that changed only files outside paths without running the command, lists the changed files, and keeps the last deploy as deployed', async () => {
    const { push, finished, ran, remote, dir, settings } = await setup([{ name: 'app' }]);
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n', 'docs/guide.md': 'a\n' });
    expect((await finished('app', (await push({ after: first })).app ?? '')).status).toBe('succeeded');

    const docs = await remote.commit({ 'docs/guide.md': 'b\n', 'docs/faq.md': 'q\n' });
    const skipped = await finished('app', (await push({ after: docs, before: first })).app ?? '');
    expect(skipped).toMatchObject({ status: 'skipped', deployedSha: docs, reason: `no changed file matches paths (2 files changed between ${short(first)} and ${short(docs)})` });
    expect(skipped.exitCode).toBeUndefined();
    expect(await ran('app')).toEqual([first]);
    expect(skipped.log).toContain(`[deployhook] paths: comparing the last deployed commit ${first} with ${docs}\n`);
    expect(skipped.log).toContain('none matches paths:\n[deployhook]   docs/faq.md\n[deployhook]   docs/guide.md\n');
    expect(skipped.log).not.toContain('$ "sh"');
    expect(skipped.log).toMatch(/\[deployhook\] finished: skipped, no exit code, after .* \(no changed file matches paths/);

    const { jobs } = (await (await api('/api/jobs')).json()) as { jobs: Array<{ deployedSha: string; lastRun: RunRecord }> };
    expect(jobs[0]).toMatchObject({ deployedSha: first, lastRun: { id: skipped.id, status: 'skipped' } });
    expect(await (await api(`/runs/${skipped.id}`)).text()).toContain('<span class="badge badge-skipped">skipped</span>');
    expect(await (await api('/metrics')).text()).toContain('deployhook_runs_total{job="app",status="skipped"} 1');

    // A skipped record is read back after a restart like any other.
    await hook?.stop();
    hook = await startDaemon(dir, settings, { SECRET, API_TOKEN: TOKEN });
    const { runs } = (await (await api('/api/runs?status=skipped')).json()) as { runs: RunRecord[] };
    expect(runs.map((run) => run.id)).toEqual([skipped.id]);
    expect((await readdir(join(dir, 'state', 'runs', 'app'))).filter((name) => name.endsWith('.corrupt'))).toEqual([]);
  });

  it('runs the command for a push that changed a file under paths, compared with the last deployed commit rather than a skipped one', async () => {
    const { push, finished, ran, remote } = await setup([{ name: 'app' }]);
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n' });
    await finished('app', (await push({ after: first })).app ?? '');
    const docs = await remote.commit({ 'docs/guide.md': 'a\n' });
    expect((await finished('app', (await push({ after: docs, before: first })).app ?? '')).status).toBe('skipped');

    const change = await remote.commit({ 'deploy/app.yml': 'v2\n' });
    const deployed = await finished('app', (await push({ after: change, before: docs })).app ?? '');
    expect(deployed.status).toBe('succeeded');
    expect(deployed.log).toContain(`[deployhook] paths: comparing the last deployed commit ${first} with ${change}\n`);
    expect(deployed.log).toContain(`[deployhook] paths: 2 files changed between ${short(first)} and ${short(change)}; 1 matches paths: deploy/app.yml\n`);
    expect(await ran('app')).toEqual([first, change]);
  });

  it('honours exclusions, reads a list of only exclusions as every file but those, and treats dot files as ordinary files', async () => {
    const { push, finished, remote } = await setup([
      { name: 'except-docs', paths: ['!docs/**', '!**/*.md'] },
      { name: 'deploy-not-readme', paths: ['deploy/**', '!deploy/README.md'] },
    ]);
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n', 'deploy/README.md': 'a\n', 'docs/a.txt': 'a\n', 'README.md': 'a\n', 'src/app.js': 'a\n' });
    const firstRuns = await push({ after: first });
    for (const [job, id] of Object.entries(firstRuns)) expect((await finished(job, id)).status).toBe('succeeded');

    const cases = [
      { files: { 'deploy/README.md': 'b\n', 'docs/a.txt': 'b\n', 'README.md': 'b\n' }, 'except-docs': 'skipped', 'deploy-not-readme': 'skipped' },
      { files: { 'src/app.js': 'b\n', 'deploy/README.md': 'c\n' }, 'except-docs': 'succeeded', 'deploy-not-readme': 'skipped' },
      { files: { 'deploy/app.yml': 'v2\n', 'docs/a.txt': 'c\n' }, 'except-docs': 'succeeded', 'deploy-not-readme': 'succeeded' },
      { files: { '.github/ci.yml': 'a\n' }, 'except-docs': 'succeeded', 'deploy-not-readme': 'skipped' },
    ];
    let before = first;
    for (const { files, ...expected } of cases) {
      const after = await remote.commit(files);
      const runs = await push({ after, before });
      const statuses = Object.fromEntries(await Promise.all(Object.entries(runs).map(async ([job, id]) => [job, (await finished(job, id)).status])));
      expect({ files: Object.keys(files), ...statuses }).toEqual({ files: Object.keys(files), ...expected });
      before = after;
    }
  });

  it('compares a force push with the last deployed commit, not with the rewritten-away tip whose deploy failed', async () => {
    const { push, finished, ran, remote } = await setup([{ name: 'app', command: ['sh', '-c', `test ! -e deploy/broken && ${RECORD_COMMIT}`] }]);
    const good = await remote.commit({ 'deploy/app.yml': 'v1\n' });
    await finished('app', (await push({ after: good })).app ?? '');
    const broken = await remote.commit({ 'deploy/broken': 'x\n' });
    expect((await finished('app', (await push({ after: broken, before: good })).app ?? '')).status).toBe('failed');

    // Rewrite history: drop the broken commit and push a docs change in its place.
    await git(remote.work, 'reset', '--quiet', '--hard', good);
    const rewritten = await remote.commit({ 'docs/notes.md': 'n\n' });
    const run = await finished('app', (await push({ after: rewritten, before: broken })).app ?? '');
    expect(run).toMatchObject({ status: 'skipped', reason: `no changed file matches paths (1 file changed between ${short(good)} and ${short(rewritten)})` });
    expect(run.log).toContain(`[deployhook] paths: comparing the last deployed commit ${good} with ${rewritten}\n`);
    expect(await ran('app')).toEqual([good]);
  });

  it('compares a brand-new branch with the last deployed commit', async () => {
    const { push, finished, ran, remote } = await setup([{ name: 'app', branches: ['main', 'feature/*'] }]);
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n' });
    await finished('app', (await push({ after: first })).app ?? '');

    const docsBranch = await remote.commit({ 'docs/a.md': 'a\n' }, 'docs', 'feature/docs');
    const docsRun = await finished('app', (await push({ after: docsBranch, ref: 'refs/heads/feature/docs' })).app ?? '');
    expect(docsRun).toMatchObject({ status: 'skipped', reason: `no changed file matches paths (1 file changed between ${short(first)} and ${short(docsBranch)})` });

    const appBranch = await remote.commit({ 'deploy/app.yml': 'v2\n' }, 'app', 'feature/app');
    const appRun = await finished('app', (await push({ after: appBranch, ref: 'refs/heads/feature/app' })).app ?? '');
    expect(appRun.status).toBe('succeeded');
    expect(appRun.log).toContain(`[deployhook] paths: comparing the last deployed commit ${first} with ${appBranch}\n`);
    expect(await ran('app')).toEqual([first, appBranch]);
  });

  it('runs a coalesced run when an earlier push it replaced changed a file under paths, though the last one did not', async () => {
    const hold = join(await tempDir(), 'hold');
    const { push, finished, ran, remote, dir } = await setup([{ name: 'app', command: ['sh', '-c', `while [ -e "$HOLD" ]; do sleep 0.05; done; ${RECORD_COMMIT}`], env: { HOLD: hold } }]);
    await writeFile(hold, '');
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n' });
    const firstRun = (await push({ after: first })).app ?? '';
    await until('the first command to start', async () => (await readRun(join(dir, 'state'), 'app', firstRun).catch(() => undefined))?.pgid !== undefined);

    const change = await remote.commit({ 'deploy/app.yml': 'v2\n' });
    const replaced = (await push({ after: change, before: first })).app ?? '';
    const docs = await remote.commit({ 'docs/a.md': 'a\n' });
    const last = (await push({ after: docs, before: change })).app ?? '';
    await rm(hold);

    expect((await finished('app', firstRun)).status).toBe('succeeded');
    expect(await finished('app', replaced)).toMatchObject({ status: 'superseded', supersededBy: last });
    const coalesced = await finished('app', last);
    expect(coalesced.status).toBe('succeeded');
    expect(coalesced.log).toContain(`[deployhook] paths: 2 files changed between ${short(first)} and ${short(docs)}; 1 matches paths: deploy/app.yml\n`);
    expect(await ran('app')).toEqual([first, docs]);
  });

  it('runs the first deploy of a job, which has nothing to compare with, even when no file matches, and says so', async () => {
    const { push, finished, ran, remote } = await setup([{ name: 'app' }]);
    const docs = await remote.commit({ 'docs/a.md': 'a\n' });
    const run = await finished('app', (await push({ after: docs })).app ?? '');
    expect(run.status).toBe('succeeded');
    expect(run.log).toContain('[deployhook] paths: no earlier commit to compare with');
    expect(await ran('app')).toEqual([docs]);
  });

  it('filters the repeat of a push the daemon died in, but not the repeat of an operator deploy', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n' });
    const docs = await remote.commit({ 'docs/a.md': 'a\n' });
    const now = new Date().toISOString();
    const base = { repo: 'acme/app', ref: 'refs/heads/main', branch: 'main', queuedAt: now, startedAt: now };
    const webhook = { type: 'webhook', provider: 'github', delivery: 'd-1', pusher: 'dev' };
    const manual = { type: 'manual', provider: 'github', delivery: 'd-2', pusher: 'api: ops@host', requestedBy: 'api: ops@host' };
    // Each job deployed `first`, then the daemon died while it ran for the docs-only commit.
    const records = [
      { ...base, id: '01jd0000000000000000000001', job: 'pushed', status: 'succeeded', trigger: webhook, sha: first, before: ZERO, deployedSha: first, finishedAt: now },
      { ...base, id: '01jd0000000000000000000002', job: 'pushed', status: 'running', trigger: webhook, sha: docs, before: first },
      { ...base, id: '01jd0000000000000000000003', job: 'asked', status: 'succeeded', trigger: webhook, sha: first, before: ZERO, deployedSha: first, finishedAt: now },
      { ...base, id: '01jd0000000000000000000004', job: 'asked', status: 'running', trigger: manual, sha: docs, before: ZERO },
    ];
    for (const record of records) {
      await mkdir(join(dir, 'state', 'runs', record.job), { recursive: true });
      await writeFile(join(dir, 'state', 'runs', record.job, `${record.id}.json`), JSON.stringify(record));
    }
    const job = { provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, paths: ['deploy/**'], command: ['true'] };
    hook = await startDaemon(dir, { jobs: [{ ...job, name: 'pushed' }, { ...job, name: 'asked' }] }, { SECRET });
    await hook.daemon.queue.whenIdle();

    const repeats = Object.fromEntries(
      await Promise.all(['pushed', 'asked'].map(async (name) => [name, (await runsOf(join(dir, 'state'), name)).find((run) => run.trigger.type === 'recovery')?.status])),
    );
    expect(repeats).toEqual({ pushed: 'skipped', asked: 'succeeded' });
  });

  it('never filters an operator deploy', async () => {
    const { push, finished, ran, remote } = await setup([{ name: 'app' }]);
    const first = await remote.commit({ 'deploy/app.yml': 'v1\n' });
    await finished('app', (await push({ after: first })).app ?? '');
    const docs = await remote.commit({ 'docs/a.md': 'a\n' });
    expect((await finished('app', (await push({ after: docs, before: first })).app ?? '')).status).toBe('skipped');

    const reply = await api('/api/jobs/app/deploy', { method: 'POST', body: JSON.stringify({ ref: 'main' }) });
    expect(reply.status).toBe(202);
    const manual = await finished('app', ((await reply.json()) as { run: { id: string } }).run.id);
    expect(manual.status).toBe('succeeded');
    expect(manual.log).not.toContain('paths:');
    expect(await ran('app')).toEqual([first, docs]);
  });
});
