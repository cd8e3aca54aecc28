import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bitbucketHeaders, bitbucketPush, type CloudChange } from '../helpers/bitbucket-payloads.js';
import { runCli } from '../helpers/cli.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { sendRaw } from '../helpers/raw-http.js';
import { loadReadmeSnippet } from '../helpers/readme-snippet.js';
import { runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'bitbucket-cloud-secret-0123456789';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

/** A bare repository with a commit on main and an annotated tag v1.0.0 on it; a job per kind of ref. */
async function start() {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'v.txt': 'release\n' });
  const other = await remote.commit({ 'v.txt': 'staging\n' }, 'staging work', 'staging');
  await git(remote.work, 'tag', '-a', 'v1.0.0', '-m', 'release 1.0.0', sha);
  await git(remote.work, 'push', '--quiet', 'origin', 'refs/tags/v1.0.0');
  const command = ['sh', '-c', 'cat v.txt; echo "ref=$DEPLOYHOOK_REF pusher=$DEPLOYHOOK_PUSHER"'];
  const job = { provider: 'bitbucket', repo: 'acme/infra', secret_env: 'SECRET', remote: remote.bare, command };
  hook = await startDaemon(dir, { allow_from: { bitbucket: ['127.0.0.0/8'] }, jobs: [{ ...job, name: 'main', branches: ['main'] }, { ...job, name: 'release', tags: ['v*'] }] }, { SECRET });
  return { state: join(dir, 'state'), daemon: hook, sha, other };
}

async function post(daemon: TestDaemon, changes: readonly CloudChange[], headers: (body: string) => Record<string, string> = (body) => bitbucketHeaders(body, SECRET)) {
  const body = JSON.stringify(bitbucketPush('acme/infra', changes));
  return daemon.post('bitbucket', body, headers(body));
}

const runIds = (json: Record<string, unknown>) => (json.runs as Array<{ id: string; job: string }>);

describe('POST /hooks/bitbucket (Bitbucket Cloud)', () => {
  it('deploys a repo:push signed as Bitbucket Cloud signs it', async () => {
    const { state, daemon, sha } = await start();
    const reply = await post(daemon, [{ name: 'main', hash: sha, old: '1'.repeat(40) }]);
    expect(reply.status).toBe(202);
    expect(runIds(reply.json)).toEqual([{ id: expect.any(String), job: 'main' }]);
    const record = await waitForRun(state, 'main', runIds(reply.json)[0]?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', branch: 'main', sha, before: '1'.repeat(40), deployedSha: sha, trigger: { provider: 'bitbucket', pusher: 'emma' } });
    expect(await readFile(record.logPath, 'utf8')).toContain('release\nref=refs/heads/main pusher=emma\n');
  });

  it('queues one run per change a job wants, deploying the commit an annotated tag points to', async () => {
    const { state, daemon, sha, other } = await start();
    // Cloud reports an annotated tag's commit as its target.
    const reply = await post(daemon, [{ name: 'main', hash: sha }, { type: 'tag', name: 'v1.0.0', hash: sha }, { name: 'staging', hash: other }]);
    expect(reply.status).toBe(202);
    expect(runIds(reply.json).map((run) => run.job).sort()).toEqual(['main', 'release']);
    expect(reply.json.ignored).toEqual(['no job deploys branch "staging" of acme/infra']);
    for (const run of runIds(reply.json)) {
      expect(await waitForRun(state, run.job, run.id)).toMatchObject({ status: 'succeeded', deployedSha: sha });
    }
    expect(await runsOf(state, 'release')).toEqual([expect.objectContaining({ tag: 'v1.0.0', ref: 'refs/tags/v1.0.0' })]);
  });

  it('ignores a deleted branch and says so, also next to a change it deploys', async () => {
    const { state, daemon, sha } = await start();
    const deleted = await post(daemon, [{ name: 'main', hash: null, old: sha }]);
    expect(deleted.status).toBe(200);
    expect(deleted.json).toMatchObject({ runs: [], reason: 'branch main was deleted: nothing to deploy' });
    expect(await runsOf(state, 'main')).toEqual([]);

    const mixed = await post(daemon, [{ type: 'tag', name: 'v0.9.0', hash: null, old: sha }, { name: 'main', hash: sha }]);
    expect(mixed.status).toBe(202);
    expect(mixed.json.ignored).toEqual(['tag v0.9.0 was deleted: nothing to deploy']);
  });

  it('deploys the good changes of a delivery and lists a malformed one as ignored, naming the field; 400 when none is good', async () => {
    const { state, daemon, sha } = await start();
    // A branch name git accepts and deployhook refuses (a part that is only "@"), beside main.
    const reply = await post(daemon, [{ name: 'main', hash: sha }, { name: 'staging', hash: 'not-a-commit' }, { name: 'feature/@/x', hash: sha }]);
    expect(reply.status).toBe(202);
    expect(reply.json.ignored).toEqual([
      'not deployed: push.changes[1].new.target.hash: expected a 40 or 64 character hex commit id',
      'not deployed: push.changes[2].new.name: expected a valid branch name',
    ]);
    expect(await waitForRun(state, 'main', runIds(reply.json)[0]?.id ?? '')).toMatchObject({ status: 'succeeded', sha });

    const bad = await post(daemon, [{ name: 'staging', hash: 'not-a-commit' }]);
    expect(bad.status).toBe(400);
    expect(bad.json.error).toBe('push.changes[0].new.target.hash: expected a 40 or 64 character hex commit id');
  });

  const refused: Array<{ name: string; headers: (body: string) => Record<string, string> }> = [
    { name: 'a signature made with the wrong secret', headers: (body) => bitbucketHeaders(body, 'not-the-secret-0123456789') },
    { name: 'an empty X-Hub-Signature', headers: (body) => ({ ...bitbucketHeaders(body, SECRET), 'X-Hub-Signature': '' }) },
    { name: "GitHub's header style: the same signature in X-Hub-Signature-256 only", headers: (body) => {
      const { 'X-Hub-Signature': signature = '', ...rest } = bitbucketHeaders(body, SECRET);
      return { ...rest, 'X-Hub-Signature-256': signature };
    } },
    { name: 'the hex digest without the sha256= prefix', headers: (body) => {
      const headers = bitbucketHeaders(body, SECRET);
      return { ...headers, 'X-Hub-Signature': (headers['X-Hub-Signature'] ?? '').slice('sha256='.length) };
    } },
  ];

  it.each(refused)('answers 401 to $name, and nothing runs', async ({ headers }) => {
    const { state, daemon, sha } = await start();
    const reply = await post(daemon, [{ name: 'main', hash: sha }], headers);
    expect(reply.status).toBe(401);
    expect(reply.json.error).toBe('signature verification failed');
    expect(await runsOf(state, 'main')).toEqual([]);
  });

  it('answers 401 to a missing signature before reading the body', async () => {
    const { daemon } = await start();
    // A body is announced but never sent: only a reply that does not wait for it arrives.
    const reply = await sendRaw(Number(new URL(daemon.url).port), {
      method: 'POST',
      path: '/hooks/bitbucket',
      headers: [['Content-Type', 'application/json'], ['X-Event-Key', 'repo:push'], ['Content-Length', '100000']],
    }, 5_000);
    expect(reply.status).toBe(401);
  });

  it('answers 200 to event keys other than repo:push, with the reason', async () => {
    const { daemon, sha } = await start();
    const reply = await post(daemon, [{ name: 'main', hash: sha }], (body) => bitbucketHeaders(body, SECRET, { event: 'pullrequest:created' }));
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ runs: [], reason: 'event "pullrequest:created" is not deployed; only repo:push is' });
  });

  it('recognises a retry of the same request, which keeps its X-Request-UUID, as a duplicate', async () => {
    const { state, daemon, sha } = await start();
    const request = 'c3a4e2f0-6b1d-4e8a-9f2b-7d5c1a0e9b84';
    const first = await post(daemon, [{ name: 'main', hash: sha }], (body) => bitbucketHeaders(body, SECRET, { request }));
    expect(first.status).toBe(202);
    const retry = await post(daemon, [{ name: 'main', hash: sha }], (body) => bitbucketHeaders(body, SECRET, { request, attempt: 2 }));
    expect(retry.status).toBe(200);
    expect(retry.json).toMatchObject({ runs: [], duplicate: true, delivery: request });
    expect(await runsOf(state, 'main')).toHaveLength(1);
  });

  it('loads the job the README shows for this host', async () => {
    const config = await loadReadmeSnippet('### Bitbucket Cloud', { INFRA_WEBHOOK_SECRET: SECRET });
    expect(config.jobs).toEqual([expect.objectContaining({ name: 'infra', provider: 'bitbucket', repo: 'acme/infra', repoKey: 'acme/infra', secrets: [SECRET] })]);
  });

  it('takes a push from deployhook send, signed the way Bitbucket Cloud signs', async () => {
    const { state, daemon, sha } = await start();
    const sent = await runCli(['send', 'main', '--config', daemon.config.file, '--url', `${daemon.url}/hooks/bitbucket`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET } });
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toContain(`sent a signed push of refs/heads/main at ${sha}`);
    const id = /queued run ([0-9a-z]{26}) of job main/.exec(sent.stdout)?.[1] ?? '';
    expect(await waitForRun(state, 'main', id)).toMatchObject({ status: 'succeeded', deployedSha: sha, trigger: { provider: 'bitbucket', pusher: 'deployhook-send' } });
  });
});
