import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createGitlabProvider } from '../../src/providers/gitlab.js';
import { systemClock, verifyDelivery } from '../../src/providers/standard-webhooks.js';
import { runCli } from '../helpers/cli.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, gitlabHeaders, gitlabPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { newSigningSecret, standardSignature } from '../helpers/standard-webhooks.js';
import { tempDir } from '../helpers/tmp.js';

const LAB_TOKEN = 'gitlab-token-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

async function start() {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'a.txt': 'a\n' });
  const signing = newSigningSecret();
  const previous = newSigningSecret();
  const job = { provider: 'gitlab', branches: ['main'], remote: remote.bare };
  hook = await startDaemon(
    dir,
    {
      max_body_bytes: 64 * 1024,
      jobs: [
        // The command prints the signing token: the run log must show it masked.
        { ...job, name: 'signed', repo: 'acme/signed', signing_token_env: ['PREVIOUS_TOKEN', 'SIGNING_TOKEN'], command: ['echo', `token ${signing}`] },
        { ...job, name: 'plain', repo: 'acme/plain', secret_env: 'LAB_TOKEN', command: ['true'] },
      ],
    },
    { SIGNING_TOKEN: signing, PREVIOUS_TOKEN: previous, LAB_TOKEN },
  );
  const push = (repo: string) => JSON.stringify(gitlabPush({ repo, after: sha }));
  return { dir, daemon: hook, sha, signing, previous, push };
}

/** What GitLab sends for a hook with a signing token: its event headers, and webhook-id = Idempotency-Key. */
function signedHeaders(secret: string, body: string, at?: Date): Record<string, string> {
  const { 'x-gitlab-token': _token, ...headers } = gitlabHeaders('');
  const signature = standardSignature(secret, body, at ? { at } : {});
  return { ...headers, 'idempotency-key': signature['webhook-id'] ?? '', ...signature };
}

describe('GitLab signed webhooks (signing tokens)', () => {
  it('queues a run for a push with a valid, fresh signature, with either token while rotating, and masks the token in the run log', async () => {
    const { dir, daemon, sha, signing, previous, push } = await start();
    const reply = await daemon.post('gitlab', push('acme/signed'), signedHeaders(signing, push('acme/signed')));
    expect(reply.status).toBe(202);
    const run = await waitForRun(join(dir, 'state'), 'signed', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    expect(run).toMatchObject({ status: 'succeeded', deployedSha: sha, trigger: { provider: 'gitlab' } });
    const log = await readFile(run.logPath, 'utf8');
    expect(log).toContain('token ***');
    expect(log).not.toContain(signing);
    expect((await daemon.post('gitlab', push('acme/signed'), signedHeaders(previous, push('acme/signed')))).status).toBe(202);
  });

  it('answers a replay of a signed delivery as a duplicate, also with another Idempotency-Key, which nothing signs', async () => {
    const { daemon, signing, push } = await start();
    const body = push('acme/signed');
    const headers = signedHeaders(signing, body);
    expect((await daemon.post('gitlab', body, headers)).status).toBe(202);
    const replay = await daemon.post('gitlab', body, { ...headers, 'idempotency-key': 'chosen-by-the-replayer' });
    expect(replay.status).toBe(200);
    expect(replay.json).toMatchObject({ duplicate: true, runs: [], delivery: headers['webhook-id'] });
  });

  it('answers 401 to a wrong signature even when X-Gitlab-Token carries the signing token: it never falls back', async () => {
    const { daemon, signing, push } = await start();
    const body = push('acme/signed');
    const wrong = { ...signedHeaders(newSigningSecret(), body), 'x-gitlab-token': signing };
    expect((await daemon.post('gitlab', body, wrong)).status).toBe(401);
    expect((await daemon.post('gitlab', body, gitlabHeaders(signing))).status).toBe(401);
  });

  it('answers 401 to a valid signature whose timestamp is outside the window, old or in the future', async () => {
    const { daemon, signing, push } = await start();
    const body = push('acme/signed');
    for (const at of [new Date(Date.now() - 6 * 60_000), new Date(Date.now() + 6 * 60_000)]) {
      const reply = await daemon.post('gitlab', body, signedHeaders(signing, body, at));
      expect(reply.status).toBe(401);
      expect(reply.json.error).toBe('signature verification failed');
    }
    expect(daemon.logLines.join('\n')).toContain('outside the accepted window');
  });

  it('still deploys a job with a secret token when GitLab also sends a signature', async () => {
    const { daemon, push } = await start();
    const body = push('acme/plain');
    const reply = await daemon.post('gitlab', body, { ...signedHeaders(newSigningSecret(), body), 'x-gitlab-token': LAB_TOKEN });
    expect(reply.status).toBe(202);
    expect(reply.json.runs).toEqual([{ id: expect.any(String), job: 'plain' }]);
  });

  it('answers 401 to a malformed signature for every job, also one with a correct secret token', async () => {
    const { daemon, push } = await start();
    const body = push('acme/plain');
    const reply = await daemon.post('gitlab', body, { ...gitlabHeaders(LAB_TOKEN), 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,not-base64!' });
    expect(reply.status).toBe(401);
  });

  it('answers 401 to a delivery with neither header before reading its body', async () => {
    const { daemon, push } = await start();
    const { 'x-gitlab-token': _token, ...headers } = gitlabHeaders('');
    expect((await daemon.post('gitlab', push('acme/signed'), headers)).status).toBe(401);
    // Larger than max_body_bytes: a body that were read would be 413.
    expect((await daemon.post('gitlab', `{"padding":"${'x'.repeat(100 * 1024)}"}`, headers)).status).toBe(401);
    expect(daemon.logLines.join('\n')).toContain('missing X-Gitlab-Token and webhook-signature headers');
  });

  it("answers 401 to GitHub's header style, as its own header or in webhook-signature", async () => {
    const { daemon, signing, push } = await start();
    const body = push('acme/signed');
    const { 'x-gitlab-token': _token, ...headers } = gitlabHeaders('');
    const github = (await githubHeaders(body, signing))['x-hub-signature-256'] ?? '';
    expect((await daemon.post('gitlab', body, { ...headers, 'x-hub-signature-256': github })).status).toBe(401);
    expect((await daemon.post('gitlab', body, { ...signedHeaders(signing, body), 'webhook-signature': github })).status).toBe(401);
  });

  it('takes a push from deployhook send, signed with the signing token', async () => {
    const { daemon, sha, signing, previous } = await start();
    const sent = await runCli(['send', 'signed', '--config', daemon.config.file, '--url', `${daemon.url}/hooks/gitlab`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SIGNING_TOKEN: signing, PREVIOUS_TOKEN: previous, LAB_TOKEN } });
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toContain(`sent a signed push of refs/heads/main at ${sha}`);
    expect(sent.stdout).toMatch(/queued run [0-9a-z]{26} of job signed/);
  });

  it('relays a delivery signed as GitLab signs for a whsec_ destination secret, and with the token otherwise', () => {
    const adapter = createGitlabProvider(systemClock);
    const body = Buffer.from('{"object_kind":"push"}');
    const destination = newSigningSecret();
    const original = { 'x-gitlab-event': 'Push Hook', 'webhook-id': 'msg_original', 'x-gitlab-token': 'not relayed' };
    const signed = adapter.relayHeaders(body, destination, original, new Date());
    expect(signed).toMatchObject({ 'x-gitlab-event': 'Push Hook', 'webhook-id': 'msg_original' });
    expect(signed['x-gitlab-token']).toBeUndefined();
    expect(verifyDelivery(signed, body, [destination], systemClock)).toEqual({ ok: true });
    expect(adapter.relayHeaders(body, LAB_TOKEN, original, new Date())).toEqual({ 'content-type': 'application/json', 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': LAB_TOKEN });
  });
});
