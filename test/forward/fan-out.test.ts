import { createHmac } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startServe, type ServeProcess } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPing, githubPush } from '../helpers/payloads.js';
import { readRun, waitForRun } from '../helpers/runs.js';
import { newSigningSecret, standardSignature } from '../helpers/standard-webhooks.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const UPSTREAM_SECRET = 'upstream-secret-0123456789abcdef';
const DOWNSTREAM_SECRET = 'downstream-secret-0123456789abcd';
const DESTINATION_SECRET = 'destination-secret-0123456789abc';
// Relays of generic events are signed as Standard Webhooks, with a key of that form.
const GENERIC_DESTINATION_SECRET = newSigningSecret();

let hook: TestDaemon | undefined;
let downstream: ServeProcess | undefined;
let destination: Server | undefined;

afterEach(async () => {
  await hook?.stop();
  await downstream?.stop();
  destination?.closeAllConnections();
  await new Promise<void>((resolve) => (destination ? destination.close(() => resolve()) : resolve()));
  hook = undefined;
  downstream = undefined;
  destination = undefined;
});

interface Received {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A destination on loopback that answers each request with the next of `answers` (the last one repeats). */
async function startDestination(answers: Array<number | (() => Promise<number>)>): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  destination = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ at: Date.now(), headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const answer = answers[Math.min(received.length - 1, answers.length - 1)] ?? 500;
      void Promise.resolve(typeof answer === 'number' ? answer : answer()).then((status) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
  });
  const server = destination;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/github`, received };
}

const signature = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

async function pushTo(daemon: TestDaemon, repo: string, sha: string): Promise<{ status: number; json: Record<string, unknown>; delivery: string }> {
  const body = JSON.stringify(githubPush({ repo, after: sha }));
  const headers = await githubHeaders(body, UPSTREAM_SECRET);
  const reply = await daemon.post('github', body, headers);
  return { ...reply, delivery: headers['x-github-delivery'] ?? '' };
}

const firstRun = (json: Record<string, unknown>) => (json.runs as Array<{ id: string }>)[0]?.id ?? '';

describe('fan-out', () => {
  it('relays a verified push to a second deployhook process, re-signed with its secret, and both deploy it', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'v1\n' });
    const marker = join(dir, 'downstream-deployed.txt');
    const downstreamConfig = join(dir, 'downstream.yml');
    await writeConfigFile(downstreamConfig, {
      state_dir: 'downstream-state',
      log_dir: 'downstream-logs',
      jobs: [{ name: 'replica', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'DOWN_SECRET', remote: remote.bare, command: ['sh', '-c', 'cat app.txt > "$MARKER"'], env: { MARKER: marker } }],
    });
    downstream = await startServe(['--config', downstreamConfig], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DOWN_SECRET: DOWNSTREAM_SECRET } });
    const downstreamUrl = `http://127.0.0.1:${downstream.port}/hooks/github`;

    hook = await startDaemon(
      dir,
      { jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command: ['true'], forward: [{ url: downstreamUrl, secret_env: 'DOWN_SECRET' }] }] },
      { UP_SECRET: UPSTREAM_SECRET, DOWN_SECRET: DOWNSTREAM_SECRET },
    );
    const reply = await pushTo(hook, 'acme/app', sha);
    expect(reply.status).toBe(202);
    const local = await waitForRun(join(dir, 'state'), 'primary', firstRun(reply.json));
    expect(local.status).toBe('succeeded');

    // The shell creates the marker before `cat` writes to it: wait for the content, not the file.
    await until('the second deployhook to deploy the push', async () => (await readFile(marker, 'utf8').catch(() => '')) === 'v1\n');
    expect(await readFile(marker, 'utf8')).toBe('v1\n');
    await until('the run record to show the relay', async () => (await readRun(join(dir, 'state'), 'primary', local.id)).forwards?.[0]?.status === 'delivered');
    const record = await readRun(join(dir, 'state'), 'primary', local.id);
    expect(record.forwards).toEqual([{ url: downstreamUrl, status: 'delivered', attempts: 1, lastStatus: 202, finishedAt: expect.any(String) }]);
    // The second daemon saw the original delivery id, so its own dedup recognises redeliveries.
    expect(downstream.lines.some((line) => line.msg === 'delivery' && line.delivery === reply.delivery && line.status === 202)).toBe(true);

    // Re-signed, not passed through: the upstream signature alone is refused downstream.
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const direct = await fetch(downstreamUrl, { method: 'POST', body, headers: await githubHeaders(body, UPSTREAM_SECRET) });
    expect(direct.status).toBe(401);
  });

  it('retries a failing destination with growing waits until it recovers, without holding up the local deploy', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'v1\n' });
    let release: (status: number) => void = () => undefined;
    const firstAnswer = new Promise<number>((resolve) => {
      release = resolve;
    });
    const target = await startDestination([() => firstAnswer, 503, 202]);
    hook = await startDaemon(
      dir,
      { jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command: ['true'], forward: [{ url: target.url, secret_env: 'FWD_SECRET', attempts: 5, backoff: '300ms' }] }] },
      { UP_SECRET: UPSTREAM_SECRET, FWD_SECRET: DESTINATION_SECRET },
    );
    const reply = await pushTo(hook, 'acme/app', sha);
    expect(reply.status).toBe(202);

    // The destination has not answered at all yet, and the local deploy is already done.
    const local = await waitForRun(join(dir, 'state'), 'primary', firstRun(reply.json));
    expect(local.status).toBe('succeeded');
    expect(target.received).toHaveLength(1);
    release(500);

    await until('the relay to be delivered', async () => (await readRun(join(dir, 'state'), 'primary', local.id)).forwards?.[0]?.status === 'delivered');
    const record = await readRun(join(dir, 'state'), 'primary', local.id);
    expect(record.forwards?.[0]).toMatchObject({ status: 'delivered', attempts: 3, lastStatus: 202 });
    expect(target.received).toHaveLength(3);
    const [, second, third] = target.received;
    expect((third?.at ?? 0) - (second?.at ?? 0)).toBeGreaterThanOrEqual(550);
    for (const request of target.received) {
      expect(request.headers['x-hub-signature-256']).toBe(signature(DESTINATION_SECRET, request.body));
      expect(request.headers['x-github-delivery']).toBe(reply.delivery);
      expect(request.headers['x-github-event']).toBe('push');
      expect(JSON.parse(request.body)).toMatchObject({ after: sha });
    }
    const logged = hook.logLines.join('\n');
    expect(logged).not.toContain(DESTINATION_SECRET);
    expect(logged).toContain('forwarding failed; retrying');
  });

  it('gives up at once on a destination that refuses the delivery, and the record says why', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'v1\n' });
    const target = await startDestination([401]);
    hook = await startDaemon(
      dir,
      { jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command: ['true'], forward: [{ url: target.url, secret_env: 'FWD_SECRET', backoff: '100ms' }] }] },
      { UP_SECRET: UPSTREAM_SECRET, FWD_SECRET: DESTINATION_SECRET },
    );
    const reply = await pushTo(hook, 'acme/app', sha);
    const id = firstRun(reply.json);
    await until('the relay to be given up', async () => (await readRun(join(dir, 'state'), 'primary', id)).forwards?.[0]?.status === 'failed');
    const record = await readRun(join(dir, 'state'), 'primary', id);
    expect(record.forwards?.[0]).toMatchObject({ status: 'failed', attempts: 1, lastStatus: 401, lastError: 'the destination answered 401; not retried' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(target.received).toHaveLength(1);
  });

  it("relays a delivery that joined a waiting run, without listing that relay in the run's record", async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const first = await remote.commit({ 'app.txt': 'v1\n' });
    const second = await remote.commit({ 'app.txt': 'v2\n' });
    const target = await startDestination([204]);
    const release = join(dir, 'release');
    const command = ['sh', '-c', `while [ ! -e ${release} ]; do sleep 0.05; done`];
    hook = await startDaemon(
      dir,
      { jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command, forward: [{ url: target.url, secret_env: 'FWD_SECRET' }] }] },
      { UP_SECRET: UPSTREAM_SECRET, FWD_SECRET: DESTINATION_SECRET },
    );
    const state = join(dir, 'state');
    const ids = { waiting: '', joiner: '' };
    try {
      const running = firstRun((await pushTo(hook, 'acme/app', first)).json);
      await until('the first run to start', async () => (await readRun(state, 'primary', running)).status === 'running');
      ids.waiting = firstRun((await pushTo(hook, 'acme/app', second)).json);
      const joined = await pushTo(hook, 'acme/app', second);
      expect(joined.json.runs).toEqual([{ id: ids.waiting, job: 'primary', joined: true }]);
      ids.joiner = joined.delivery;
      await until('three relays', () => target.received.length === 3);
    } finally {
      await writeFile(release, '');
    }
    expect(target.received.map((relayed) => relayed.headers['x-github-delivery'])).toContain(ids.joiner);
    const done = await waitForRun(state, 'primary', ids.waiting);
    expect(done.joined).toBe(1);
    expect(done.forwards).toEqual([expect.objectContaining({ url: target.url, status: 'delivered', attempts: 1 })]);
  });

  it('signs in to a destination whose URL names a user and password with HTTP Basic, and shows the URL without them or its query', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'v1\n' });
    const target = await startDestination([204]);
    const url = target.url.replace('http://', 'http://relay%40ops:p%3Ass-w0rd@') + '?token=query-token-0123';
    hook = await startDaemon(
      dir,
      { jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command: ['echo', 'the relay signs in with p:ss-w0rd'], forward: [{ url, secret_env: 'FWD_SECRET' }] }] },
      { UP_SECRET: UPSTREAM_SECRET, FWD_SECRET: DESTINATION_SECRET },
    );
    const id = firstRun((await pushTo(hook, 'acme/app', sha)).json);
    await until('the relay to be delivered', async () => (await readRun(join(dir, 'state'), 'primary', id)).forwards?.[0]?.status === 'delivered');
    // The password is a secret the daemon knows: masked in run logs like the others.
    const log = await readFile((await waitForRun(join(dir, 'state'), 'primary', id)).logPath, 'utf8');
    expect(log).toContain('\nthe relay signs in with ***\n');
    expect(target.received).toHaveLength(1);
    expect(target.received[0]?.headers.authorization).toBe(`Basic ${Buffer.from('relay@ops:p:ss-w0rd').toString('base64')}`);
    expect(target.received[0]?.headers['x-hub-signature-256']).toBe(signature(DESTINATION_SECRET, target.received[0]?.body ?? ''));
    expect((await readRun(join(dir, 'state'), 'primary', id)).forwards).toEqual([expect.objectContaining({ url: target.url, status: 'delivered' })]);
    for (const secret of ['p%3Ass-w0rd', 'p:ss-w0rd', 'query-token-0123', Buffer.from('relay@ops:p:ss-w0rd').toString('base64')]) {
      expect(hook.logLines.filter((line) => line.includes(secret))).toEqual([]);
    }
  });

  it('relays every verified delivery of a provider, pings included, and never an unverified one', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'app.txt': 'v1\n' });
    const target = await startDestination([204]);
    hook = await startDaemon(
      dir,
      {
        providers: { github: { forward: [{ url: target.url, secret_env: 'FWD_SECRET' }] } },
        jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command: ['true'] }],
      },
      { UP_SECRET: UPSTREAM_SECRET, FWD_SECRET: DESTINATION_SECRET },
    );
    const ping = JSON.stringify(githubPing('acme/app'));
    const forged = await hook.post('github', ping, await githubHeaders(ping, 'not-the-secret-0123456789abcdef', 'ping'));
    expect(forged.status).toBe(401);
    const pingHeaders = await githubHeaders(ping, UPSTREAM_SECRET, 'ping');
    const verified = await hook.post('github', ping, pingHeaders);
    expect(verified.status).toBe(200);
    await until('the ping to be relayed', () => target.received.length === 1);
    // A replay of the verified ping (same delivery id) is answered, and not relayed again.
    expect((await hook.post('github', ping, pingHeaders)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(target.received).toHaveLength(1);
    expect(target.received[0]?.headers['x-github-event']).toBe('ping');
    expect(target.received[0]?.headers['x-hub-signature-256']).toBe(signature(DESTINATION_SECRET, target.received[0]?.body ?? ''));
  });

  it('relays a generic event that queues nothing once per sender, though two senders on one source use the same webhook-id', async () => {
    const dir = await tempDir();
    const target = await startDestination([204]);
    const [first, second] = [newSigningSecret(), newSigningSecret()];
    // Neither job's `when` accepts these events: they queue nothing, and are only relayed.
    const job = { provider: 'generic', source: 'ops', workdir: dir, command: ['true'], when: { status: 'never' } };
    hook = await startDaemon(
      dir,
      {
        providers: { generic: { forward: [{ url: target.url, secret_env: 'FWD_SECRET' }] } },
        jobs: [{ ...job, name: 'alerts', secret_env: 'FIRST_SECRET' }, { ...job, name: 'builds', secret_env: 'SECOND_SECRET' }],
      },
      { FIRST_SECRET: first, SECOND_SECRET: second, FWD_SECRET: GENERIC_DESTINATION_SECRET },
    );
    const send = (secret: string, body: string) => hook?.post('generic/ops', body, { 'content-type': 'application/json', ...standardSignature(secret, body, { id: 'build-42' }) });
    expect((await send(first, '{"status":"a"}'))?.status).toBe(200);
    expect((await send(second, '{"status":"b"}'))?.status).toBe(200);
    await until('both senders\' events to be relayed', () => target.received.length === 2);
    // Each sender's replay is not relayed again.
    expect((await send(first, '{"status":"a"}'))?.status).toBe(200);
    expect((await send(second, '{"status":"b"}'))?.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(target.received.map((received) => received.body).sort()).toEqual(['{"status":"a"}', '{"status":"b"}']);
  });

  it('records a relay that was still retrying at shutdown as failed, with the reason', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'v1\n' });
    const target = await startDestination([503]);
    hook = await startDaemon(
      dir,
      { jobs: [{ name: 'primary', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'UP_SECRET', remote: remote.bare, command: ['true'], forward: [{ url: target.url, secret_env: 'FWD_SECRET', backoff: '1m' }] }] },
      { UP_SECRET: UPSTREAM_SECRET, FWD_SECRET: DESTINATION_SECRET },
    );
    const reply = await pushTo(hook, 'acme/app', sha);
    const id = firstRun(reply.json);
    await waitForRun(join(dir, 'state'), 'primary', id);
    await until('the first attempt to fail', async () => (await readRun(join(dir, 'state'), 'primary', id)).forwards?.[0]?.attempts === 1);
    const stopped = Date.now();
    await hook.stop();
    hook = undefined;
    // Stopping does not wait out the one-minute backoff.
    expect(Date.now() - stopped).toBeLessThan(20_000);
    const record = await readRun(join(dir, 'state'), 'primary', id);
    expect(record.forwards?.[0]).toMatchObject({ status: 'failed', attempts: 1, lastStatus: 503 });
    expect(record.forwards?.[0]?.lastError).toMatch(/deployhook stopped before the destination accepted the delivery/);
  });
});
