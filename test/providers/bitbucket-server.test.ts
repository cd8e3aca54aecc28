import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bitbucketServerHeaders, bitbucketServerPush, diagnosticsPing, type ServerChange } from '../helpers/bitbucket-payloads.js';
import { runCli } from '../helpers/cli.js';
import { parsedLines, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { loadReadmeSnippet } from '../helpers/readme-snippet.js';
import { runsOf, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'bitbucket-dc-secret-0123456789ab';
const OTHER_SECRET = 'bitbucket-dc-other-secret-0123456';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

/** Jobs written `proj/infra`: Data Center names the repository `PROJ/infra`, matched case-insensitively. */
async function start(allowFrom = ['127.0.0.0/8']) {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'v.txt': 'release\n' });
  await remote.commit({ 'v.txt': 'later\n' });
  await git(remote.work, 'tag', '-a', 'v1.0.0', '-m', 'release 1.0.0', sha);
  await git(remote.work, 'push', '--quiet', 'origin', 'refs/tags/v1.0.0');
  const tagObject = await git(remote.work, 'rev-parse', 'refs/tags/v1.0.0');
  const head = await git(remote.work, 'rev-parse', 'refs/heads/main');
  const command = ['sh', '-c', 'cat v.txt; echo "ref=$DEPLOYHOOK_REF pusher=$DEPLOYHOOK_PUSHER"'];
  const job = { provider: 'bitbucket-server', repo: 'proj/infra', remote: remote.bare, command };
  hook = await startDaemon(dir, {
    allow_from: { 'bitbucket-server': allowFrom },
    jobs: [
      { ...job, name: 'main', branches: ['main'], secret_env: 'SECRET' },
      { ...job, name: 'release', tags: ['v*'], secret_env: 'OTHER_SECRET' },
    ],
  }, { SECRET, OTHER_SECRET });
  return { state: join(dir, 'state'), daemon: hook, sha, head, tagObject };
}

async function post(daemon: TestDaemon, changes: readonly ServerChange[], headers: (body: string) => Record<string, string> = (body) => bitbucketServerHeaders(body, SECRET)) {
  const body = JSON.stringify(bitbucketServerPush('PROJ/infra', changes));
  return daemon.post('bitbucket-server', body, headers(body));
}

const runIds = (json: Record<string, unknown>) => (json.runs as Array<{ id: string; job: string }>);

describe('POST /hooks/bitbucket-server (Bitbucket Data Center)', () => {
  it('deploys a repo:refs_changed signed as Bitbucket Data Center signs it', async () => {
    const { state, daemon, sha, head } = await start();
    const reply = await post(daemon, [{ ref: 'refs/heads/main', fromHash: sha, toHash: head }]);
    expect(reply.status).toBe(202);
    expect(runIds(reply.json)).toEqual([{ id: expect.any(String), job: 'main' }]);
    const record = await waitForRun(state, 'main', runIds(reply.json)[0]?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', repo: 'PROJ/infra', branch: 'main', before: sha, deployedSha: head, trigger: { provider: 'bitbucket-server', pusher: 'admin' } });
    expect(await readFile(record.logPath, 'utf8')).toContain('later\nref=refs/heads/main pusher=admin\n');
  });

  it('deploys the commit of an annotated tag whose toHash is the tag object', async () => {
    const { state, daemon, sha, tagObject } = await start();
    const reply = await post(daemon, [{ ref: 'refs/tags/v1.0.0', toHash: tagObject }], (body) => bitbucketServerHeaders(body, OTHER_SECRET));
    expect(reply.status).toBe(202);
    const record = await waitForRun(state, 'release', runIds(reply.json)[0]?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', tag: 'v1.0.0', sha: tagObject, deployedSha: sha });
  });

  it('ignores a deleted branch and says so', async () => {
    const { state, daemon, head } = await start();
    const reply = await post(daemon, [{ ref: 'refs/heads/main', fromHash: head, toHash: '0'.repeat(40), type: 'DELETE' }]);
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ runs: [], reason: 'branch main was deleted: nothing to deploy' });
    expect(await runsOf(state, 'main')).toEqual([]);
  });

  it('answers "Test connection" (diagnostics:ping) signed with any of its jobs\' secrets with 200, and runs nothing', async () => {
    const { state, daemon } = await start();
    const body = diagnosticsPing();
    for (const secret of [SECRET, OTHER_SECRET]) {
      const reply = await daemon.post('bitbucket-server', body, bitbucketServerHeaders(body, secret, { event: 'diagnostics:ping' }));
      expect(reply.status).toBe(200);
      expect(reply.json).toMatchObject({ runs: [], reason: expect.stringContaining('test delivery') });
    }
    expect([...(await runsOf(state, 'main')), ...(await runsOf(state, 'release'))]).toEqual([]);
  });

  it('with more different secrets than are tried before parsing, answers a test delivery 401 without trying them all', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'v.txt': 'one\n' });
    const secrets = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`SECRET_${i}`, `${SECRET}-${i}`]));
    const jobs = Array.from({ length: 17 }, (_, i) => ({ name: `app-${i}`, provider: 'bitbucket-server', repo: `proj/app-${i}`, branches: ['main'], remote: remote.bare, command: ['true'], secret_env: `SECRET_${i}` }));
    hook = await startDaemon(dir, { jobs }, secrets);
    const daemon = hook;
    const ping = diagnosticsPing();
    // Every secret would be tried over a body nobody signed, for each such request.
    expect((await daemon.post('bitbucket-server', ping, bitbucketServerHeaders(ping, `${SECRET}-16`, { event: 'diagnostics:ping' }))).status).toBe(401);
    const lines = parsedLines(daemon);
    expect(lines).toContainEqual(expect.objectContaining({ msg: 'delivery', status: 401, reason: "a test delivery, and the provider's jobs have more than 16 different secrets to try" }));
    // A push still verifies against its repository's job.
    const sha = await remote.commit({ 'v.txt': 'two\n' });
    const push = JSON.stringify(bitbucketServerPush('proj/app-16', [{ ref: 'refs/heads/main', toHash: sha }]));
    expect((await daemon.post('bitbucket-server', push, bitbucketServerHeaders(push, `${SECRET}-16`))).status).toBe(202);
  });

  it('answers 401 to a diagnostics:ping that is unsigned or signed with another secret', async () => {
    const { daemon } = await start();
    const body = diagnosticsPing();
    const { 'X-Hub-Signature': _signature, ...unsigned } = bitbucketServerHeaders(body, SECRET, { event: 'diagnostics:ping' });
    expect((await daemon.post('bitbucket-server', body, unsigned)).status).toBe(401);
    const wrong = await daemon.post('bitbucket-server', body, bitbucketServerHeaders(body, 'not-the-secret-0123456789', { event: 'diagnostics:ping' }));
    expect(wrong.status).toBe(401);
    expect(wrong.json.error).toBe('signature verification failed');
  });

  const refused: Array<{ name: string; headers: (body: string) => Record<string, string> }> = [
    { name: 'a signature made with the wrong secret', headers: (body) => bitbucketServerHeaders(body, 'not-the-secret-0123456789') },
    { name: 'an empty X-Hub-Signature', headers: (body) => ({ ...bitbucketServerHeaders(body, SECRET), 'X-Hub-Signature': '' }) },
    { name: "GitHub's header style: the same signature in X-Hub-Signature-256 only", headers: (body) => {
      const { 'X-Hub-Signature': signature = '', ...rest } = bitbucketServerHeaders(body, SECRET);
      return { ...rest, 'X-Hub-Signature-256': signature };
    } },
  ];

  it.each(refused)('answers 401 to $name, and nothing runs', async ({ headers }) => {
    const { state, daemon, head } = await start();
    const reply = await post(daemon, [{ ref: 'refs/heads/main', toHash: head }], headers);
    expect(reply.status).toBe(401);
    expect(reply.json.error).toBe('signature verification failed');
    expect(await runsOf(state, 'main')).toEqual([]);
  });

  it('answers 200 to event keys other than repo:refs_changed, with the reason', async () => {
    const { daemon, head } = await start();
    const reply = await post(daemon, [{ ref: 'refs/heads/main', toHash: head }], (body) => bitbucketServerHeaders(body, SECRET, { event: 'pr:opened' }));
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ runs: [], reason: 'event "pr:opened" is not deployed; only repo:refs_changed is' });
  });

  it('recognises a redelivery with the same X-Request-Id as a duplicate', async () => {
    const { state, daemon, head } = await start();
    const request = '5f0b8a7e-2c1d-4f6a-8e3b-9d0c1b2a3f4e';
    const headers = (body: string) => bitbucketServerHeaders(body, SECRET, { request });
    expect((await post(daemon, [{ ref: 'refs/heads/main', toHash: head }], headers)).status).toBe(202);
    const again = await post(daemon, [{ ref: 'refs/heads/main', toHash: head }], headers);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ runs: [], duplicate: true, delivery: request });
    expect(await runsOf(state, 'main')).toHaveLength(1);
  });

  it('answers 403 to a delivery from outside allow_from.bitbucket-server', async () => {
    const { state, daemon, head } = await start(['192.0.2.0/24']);
    expect((await post(daemon, [{ ref: 'refs/heads/main', toHash: head }])).status).toBe(403);
    expect(await runsOf(state, 'main')).toEqual([]);
  });

  it('loads the job the README shows for this host', async () => {
    const config = await loadReadmeSnippet('### Bitbucket Data Center', { BILLING_WEBHOOK_SECRET: SECRET });
    expect(config.jobs).toEqual([expect.objectContaining({ name: 'billing', provider: 'bitbucket-server', repo: 'OPS/billing', repoKey: 'ops/billing', secrets: [SECRET] })]);
  });

  it('takes a push from deployhook send, signed the way Bitbucket Data Center signs', async () => {
    const { state, daemon, head } = await start();
    const sent = await runCli(['send', 'main', '--config', daemon.config.file, '--url', `${daemon.url}/hooks/bitbucket-server`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET, OTHER_SECRET } });
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toContain(`sent a signed push of refs/heads/main at ${head}`);
    const id = /queued run ([0-9a-z]{26}) of job main/.exec(sent.stdout)?.[1] ?? '';
    expect(await waitForRun(state, 'main', id)).toMatchObject({ status: 'succeeded', deployedSha: head, trigger: { provider: 'bitbucket-server', pusher: 'deployhook-send' } });
  });
});
