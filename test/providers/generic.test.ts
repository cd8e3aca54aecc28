import { mkdir, readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { createGenericProvider } from '../../src/providers/generic.js';
import { systemClock, verifyDelivery } from '../../src/providers/standard-webhooks.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, type TestRemote } from '../helpers/git-repo.js';
import { githubHeaders } from '../helpers/payloads.js';
import { runsOf, waitForRun } from '../helpers/runs.js';
import { newSigningSecret, standardSignature } from '../helpers/standard-webhooks.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const API_TOKEN = 'api-token-0123456789abcdef';
/** Writes what the command saw (its folder and environment) to seen.json in the folder it runs in. */
const RECORD = ['node', '-e', 'require("fs").writeFileSync("seen.json", JSON.stringify({ cwd: process.cwd(), env: process.env }))'];
const FIRING = JSON.parse(await readFile(new URL('../fixtures/alertmanager/firing.json', import.meta.url), 'utf8')) as Record<string, unknown>;

let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

interface Setup {
  dir: string;
  daemon: TestDaemon;
  secret: string;
  remote: TestRemote;
  folder: string;
  env: Record<string, string>;
}

async function start(): Promise<Setup> {
  const dir = await tempDir();
  const folder = join(dir, 'remediation');
  await mkdir(folder);
  const remote = await createRemote(dir);
  await remote.commit({ 'site.yml': 'first\n' });
  const secret = newSigningSecret();
  const env = { ALERTS_SECRET: secret, API_TOKEN };
  hook = await startDaemon(
    dir,
    {
      api: { token_env: 'API_TOKEN' },
      jobs: [
        {
          name: 'remediate-disk',
          provider: 'generic',
          source: 'alertmanager',
          secret_env: 'ALERTS_SECRET',
          when: { status: 'firing', 'commonLabels.severity': ['critical', 'page'] },
          // PATH and LD_PRELOAD too: payload data under such names would choose what runs.
          fields: { ALERT_NAME: 'commonLabels.alertname', INSTANCE: 'alerts.0.labels.instance', LABELS: 'commonLabels', RUNBOOK: 'commonAnnotations.runbook', PATH: 'status', LD_PRELOAD: 'commonLabels.alertname' },
          workdir: 'remediation',
          command: RECORD,
        },
        { name: 'ci-notify', provider: 'generic', source: 'ci', secret_env: 'ALERTS_SECRET', workdir: folder, command: ['true'] },
        { name: 'pipeline-deploy', provider: 'generic', source: 'pipeline', secret_env: 'ALERTS_SECRET', remote: remote.bare, branches: ['main'], command: RECORD },
      ],
    },
    env,
  );
  return { dir, daemon: hook, secret, remote, folder, env };
}

const alert = (changes: { status?: string; severity?: string } = {}) =>
  JSON.stringify({ ...FIRING, status: changes.status ?? 'firing', commonLabels: { ...(FIRING.commonLabels as object), severity: changes.severity ?? 'critical' } });

function signed(secret: string, body: string, options: { id?: string; at?: Date } = {}): Record<string, string> {
  return { 'content-type': 'application/json', 'user-agent': 'Alertmanager/0.28.1', ...standardSignature(secret, body, options) };
}

const firstRun = (reply: { json: Record<string, unknown> }) => (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '';

describe('POST /hooks/generic/<source>', () => {
  it('runs a job without a remote in its workdir for a signed Alertmanager event, and the command sees the fields as variables', async () => {
    const { dir, daemon, secret, folder } = await start();
    const body = alert();
    const headers = signed(secret, body);
    const reply = await daemon.post('generic/alertmanager', body, headers);
    expect(reply.status).toBe(202);
    expect(reply.json).toEqual({ delivery: headers['webhook-id'], runs: [{ id: expect.any(String), job: 'remediate-disk' }] });
    const run = await waitForRun(join(dir, 'state'), 'remediate-disk', firstRun(reply));
    expect(run).toMatchObject({ status: 'succeeded', source: 'alertmanager', repo: '', ref: '', sha: '', trigger: { type: 'webhook', provider: 'generic', delivery: headers['webhook-id'] } });
    expect(run.deployedSha).toBeUndefined();

    const seen = JSON.parse(await readFile(join(folder, 'seen.json'), 'utf8')) as { cwd: string; env: Record<string, string> };
    expect(seen.cwd).toBe(folder);
    expect(seen.env).toMatchObject({
      DEPLOYHOOK_FIELD_ALERT_NAME: 'DiskFull',
      DEPLOYHOOK_FIELD_INSTANCE: 'db1:9100',
      DEPLOYHOOK_FIELD_LABELS: JSON.stringify((JSON.parse(body) as { commonLabels: unknown }).commonLabels),
      DEPLOYHOOK_FIELD_RUNBOOK: '',
      DEPLOYHOOK_FIELD_PATH: 'firing',
      DEPLOYHOOK_FIELD_LD_PRELOAD: 'DiskFull',
      PATH: process.env.PATH,
      DEPLOYHOOK_PROVIDER: 'generic',
      DEPLOYHOOK_SOURCE: 'alertmanager',
      DEPLOYHOOK_DELIVERY: headers['webhook-id'],
      DEPLOYHOOK_TRIGGER: 'webhook',
    });
    for (const name of ['ALERT_NAME', 'INSTANCE', 'LD_PRELOAD']) expect(seen.env).not.toHaveProperty(name);
    expect(await readFile(seen.env.DEPLOYHOOK_EVENT_FILE ?? '', 'utf8')).toBe(body);
    const log = await readFile(run.logPath, 'utf8');
    expect(log).toContain('event:    from alertmanager');
    expect(log).toContain('[deployhook] fields:   DEPLOYHOOK_FIELD_ALERT_NAME DEPLOYHOOK_FIELD_INSTANCE DEPLOYHOOK_FIELD_LABELS DEPLOYHOOK_FIELD_RUNBOOK DEPLOYHOOK_FIELD_PATH DEPLOYHOOK_FIELD_LD_PRELOAD\n');
    expect(log).toContain('(generic event from alertmanager)');
    expect(log).not.toContain('syncing');
  });

  it('answers 200 with the reason and runs nothing when the event does not meet `when`', async () => {
    const { dir, daemon, secret } = await start();
    const body = alert({ status: 'resolved' });
    const reply = await daemon.post('generic/alertmanager', body, signed(secret, body));
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({ delivery: expect.any(String), runs: [], reason: 'the event does not match `when` of job remediate-disk: status is "resolved", expected "firing"' });
    expect(await runsOf(join(dir, 'state'), 'remediate-disk')).toEqual([]);
  });

  it('takes any of the values a `when` list names, and no other', async () => {
    const { daemon, secret } = await start();
    const page = alert({ severity: 'page' });
    expect((await daemon.post('generic/alertmanager', page, signed(secret, page))).status).toBe(202);
    const warning = alert({ severity: 'warning' });
    const reply = await daemon.post('generic/alertmanager', warning, signed(secret, warning));
    expect(reply.status).toBe(200);
    expect(reply.json.reason).toBe('the event does not match `when` of job remediate-disk: commonLabels.severity is "warning", expected one of "critical", "page"');
  });

  const refused: Array<{ name: string; headers: (secret: string, body: string) => Promise<Record<string, string>> | Record<string, string> }> = [
    { name: 'a signature made with the wrong secret', headers: (_secret, body) => signed(newSigningSecret(), body) },
    { name: 'an empty signature header', headers: (secret, body) => ({ ...signed(secret, body), 'webhook-signature': '' }) },
    { name: 'no signature header', headers: (secret, body) => ({ ...signed(secret, body), 'webhook-signature': undefined as unknown as string }) },
    { name: 'a valid signature with a stale timestamp', headers: (secret, body) => signed(secret, body, { at: new Date(Date.now() - 10 * 60_000) }) },
    { name: "GitHub's signature header", headers: async (secret, body) => ({ 'content-type': 'application/json', ...(await githubHeaders(body, secret)) }) },
    { name: "GitHub's signature style in webhook-signature", headers: async (secret, body) => ({ ...signed(secret, body), 'webhook-signature': (await githubHeaders(body, secret))['x-hub-signature-256'] ?? '' }) },
  ];

  it.each(refused)('answers 401 to $name and runs nothing', async ({ headers }) => {
    const { dir, daemon, secret } = await start();
    const body = alert();
    const sent = Object.fromEntries(Object.entries(await headers(secret, body)).filter((entry) => entry[1] !== undefined));
    const reply = await daemon.post('generic/alertmanager', body, sent);
    expect(reply.status).toBe(401);
    expect(reply.json.error).toBe('signature verification failed');
    expect(await runsOf(join(dir, 'state'), 'remediate-disk')).toEqual([]);
  });

  it('answers a redelivery of a webhook-id as a duplicate, per source', async () => {
    const { daemon, secret } = await start();
    const body = alert();
    const first = await daemon.post('generic/alertmanager', body, signed(secret, body, { id: 'msg_redelivered' }));
    expect(first.status).toBe(202);
    const again = await daemon.post('generic/alertmanager', body, signed(secret, body, { id: 'msg_redelivered' }));
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ runs: [], duplicate: true });
    expect((await daemon.post('generic/ci', body, signed(secret, body, { id: 'msg_redelivered' }))).status).toBe(202);
  });

  it('keeps the webhook-ids of senders with different secrets on one source apart', async () => {
    const dir = await tempDir();
    const [first, second] = [newSigningSecret(), newSigningSecret()];
    const job = { provider: 'generic', source: 'ops', workdir: dir, command: ['true'] };
    hook = await startDaemon(dir, { jobs: [{ ...job, name: 'alerts', secret_env: 'FIRST_SECRET' }, { ...job, name: 'builds', secret_env: 'SECOND_SECRET' }] }, { FIRST_SECRET: first, SECOND_SECRET: second });
    const alertBody = '{"alert":"disk"}';
    const buildBody = '{"build":42}';
    const fromFirst = await hook.post('generic/ops', alertBody, signed(first, alertBody, { id: 'build-42' }));
    expect(fromFirst.status).toBe(202);
    expect((fromFirst.json.runs as Array<{ job: string }>).map((run) => run.job)).toEqual(['alerts']);
    // Another sender's delivery that happens to use the same id is its own, not a duplicate.
    const fromSecond = await hook.post('generic/ops', buildBody, signed(second, buildBody, { id: 'build-42' }));
    expect(fromSecond.status).toBe(202);
    expect((fromSecond.json.runs as Array<{ job: string }>).map((run) => run.job)).toEqual(['builds']);
    // Each sender's redelivery is still a duplicate.
    expect((await hook.post('generic/ops', buildBody, signed(second, buildBody, { id: 'build-42' }))).json).toMatchObject({ runs: [], duplicate: true });
    expect((await hook.post('generic/ops', alertBody, signed(first, alertBody, { id: 'build-42' }))).json).toMatchObject({ runs: [], duplicate: true });
  });

  it('answers 503 to a copy of a delivery still being recorded, and takes the retry once the first failed', async () => {
    const dir = await tempDir();
    // A git remote that accepts connections and never answers: reading the branch tip waits.
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const secret = newSigningSecret();
    const job = { name: 'slow-remote', provider: 'generic', source: 'pipeline', secret_env: 'ALERTS_SECRET', remote: `git://127.0.0.1:${port}/app.git`, branches: ['main'], command: ['true'] };
    hook = await startDaemon(dir, { jobs: [job] }, { ALERTS_SECRET: secret });
    const body = '{"pipeline":{"status":"success"}}';
    const headers = signed(secret, body, { id: 'msg_in_flight' });
    const first = hook.post('generic/pipeline', body, headers);
    await until('git to ask the remote', () => held.length > 0);

    const copy = await hook.post('generic/pipeline', body, headers);
    expect(copy.status).toBe(503);
    expect(copy.headers.get('retry-after')).toBe('5');
    expect(copy.json).toEqual({ delivery: 'msg_in_flight', error: 'this delivery is still being recorded; retry shortly' });

    // The remote goes away: the first copy fails and is not remembered, so a retry is new work.
    silent.close();
    for (const socket of held) socket.destroy();
    expect((await first).status).toBe(503);
    const retry = await hook.post('generic/pipeline', body, headers);
    expect(retry.status).toBe(503);
    expect(retry.json.error).toBe('the delivery could not be recorded; retry later');
  });

  it('deploys the current tip of the branch of a generic job with a remote', async () => {
    const { dir, daemon, secret, remote } = await start();
    const tip = await remote.commit({ 'site.yml': 'second\n' });
    const reply = await daemon.post('generic/pipeline', '{"pipeline":{"status":"success"}}', signed(secret, '{"pipeline":{"status":"success"}}'));
    expect(reply.status).toBe(202);
    const run = await waitForRun(join(dir, 'state'), 'pipeline-deploy', firstRun(reply));
    expect(run).toMatchObject({ status: 'succeeded', source: 'pipeline', ref: 'refs/heads/main', branch: 'main', sha: tip, deployedSha: tip });
    const seen = JSON.parse(await readFile(join(dir, 'state', 'checkouts', 'pipeline-deploy', 'seen.json'), 'utf8')) as { env: Record<string, string> };
    expect(seen.env).toMatchObject({ DEPLOYHOOK_SHA: tip, DEPLOYHOOK_BRANCH: 'main', DEPLOYHOOK_SOURCE: 'pipeline' });
  });

  it('answers 404 without a source, and to another provider with a source; 401 for a source no job has', async () => {
    const { daemon, secret } = await start();
    const body = alert();
    expect((await daemon.post('generic', body, signed(secret, body))).status).toBe(404);
    expect((await daemon.post('github/alertmanager', body, signed(secret, body))).status).toBe(404);
    expect((await daemon.post('generic/unknown', body, signed(secret, body))).status).toBe(401);
  });

  it('sends a signed event with deployhook send --data, and lists it as an event in the CLI', async () => {
    const { dir, daemon, env } = await start();
    const cliEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env };
    const url = `${daemon.url}/hooks/generic/alertmanager`;
    const sent = await runCli(['send', 'remediate-disk', '--config', daemon.config.file, '--url', url, '--data', alert()], { env: cliEnv });
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toContain(`sent a signed event to ${url}: HTTP 202`);
    await until('the run to finish', async () => (await runsOf(join(dir, 'state'), 'remediate-disk')).some((run) => run.status === 'succeeded'));
    const api = ['--config', daemon.config.file, '--url', daemon.url];
    const runs = await runCli(['runs', ...api], { env: cliEnv });
    expect(runs.stdout).toMatch(/remediate-disk\s+succeeded\s+webhook\s+event from alertmanager\s+-/);
    const jobs = await runCli(['jobs', ...api], { env: cliEnv });
    expect(jobs.stdout).toMatch(/remediate-disk\s+idle\s+events from alertmanager/);
    expect((await runCli(['deploy', 'remediate-disk', ...api], { env: cliEnv })).stderr).toContain('has no remote');

    const authorization = `Basic ${Buffer.from(`x:${API_TOKEN}`).toString('base64')}`;
    const page = await (await fetch(`${daemon.url}/`, { headers: { authorization } })).text();
    expect(page).toContain('<td>events from alertmanager</td>');
    expect(page).toContain('<td>event from alertmanager</td>');
    const [run] = await runsOf(join(dir, 'state'), 'remediate-disk');
    const runPage = await (await fetch(`${daemon.url}/runs/${run?.id ?? ''}`, { headers: { authorization } })).text();
    expect(runPage).toContain('<dt>Event</dt><dd>from alertmanager</dd>');
    expect(runPage).toContain('<dt>Commit requested</dt><dd class="mono">—</dd>');
  });

  it('relays an event signed with the destination secret, keeping its webhook-id', () => {
    const adapter = createGenericProvider(systemClock);
    const destination = newSigningSecret();
    const body = Buffer.from(alert());
    const headers = adapter.relayHeaders(body, destination, { 'webhook-id': 'msg_original', 'webhook-signature': 'v1,not relayed' }, new Date());
    expect(headers['webhook-id']).toBe('msg_original');
    expect(verifyDelivery(headers, body, [destination], systemClock)).toEqual({ ok: true });
  });

  it("accepts an event signed by the README's openssl and curl example", async () => {
    const { daemon, secret } = await start();
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const script = /```sh\n(url=[^\n]*\n[\s\S]*?openssl dgst[\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(script).toContain('curl');
    const local = script.replace(/^url=.*$/m, `url=${daemon.url}/hooks/generic/alertmanager`);
    // The sender's copy of the job's secret, where the example reads it.
    const { stdout } = await execa('bash', ['-euo', 'pipefail', '-c', local], { env: { ALERTS_SECRET: secret } });
    expect(JSON.parse(stdout)).toMatchObject({ runs: [{ job: 'remediate-disk' }] });
  });
});
