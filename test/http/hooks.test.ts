import { request } from 'node:http';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRemote, type TestRemote } from '../helpers/git-repo.js';
import { inBatches, leftOutCount, parsedLines, startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { githubHeaders, githubOrganisationPing, githubPing, githubPush, gitlabHeaders, gitlabPush } from '../helpers/payloads.js';
import { allRunFiles, waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const WEB_SECRET = 'web-secret-0123456789abcdef';
const OPS_SECRET = 'ops-secret-fedcba9876543210';
const LAB_TOKEN = 'gitlab-token-0123456789abcdef';

let dir: string;
let remote: TestRemote;
let sha: string;
let hook: TestDaemon;

beforeEach(async () => {
  dir = await tempDir();
  remote = await createRemote(dir);
  sha = await remote.commit({ 'README.md': 'hello\n' });
  const job = { remote: remote.bare, command: ['true'] };
  hook = await startDaemon(
    dir,
    {
      max_body_bytes: 64 * 1024,
      jobs: [
        { ...job, name: 'web', provider: 'github', repo: 'acme/web', branches: ['main', 'release/*'], secret_env: 'WEB_SECRET' },
        { ...job, name: 'web-ops', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'OPS_SECRET' },
        { ...job, name: 'lab', provider: 'gitlab', repo: 'acme/platform/lab', branches: ['main'], secret_env: 'LAB_TOKEN' },
      ],
    },
    { WEB_SECRET, OPS_SECRET, LAB_TOKEN },
  );
});

afterEach(async () => {
  await hook.stop();
});

/** Every run record and payload a restart would find, journal included. */
function runFiles(): Promise<string[]> {
  return allRunFiles(join(dir, 'state'));
}

function expectNoSecretLeaked(...texts: string[]): void {
  for (const text of texts) {
    for (const secret of [WEB_SECRET, OPS_SECRET, LAB_TOKEN]) expect(text).not.toContain(secret);
  }
}

describe('POST /hooks/github', () => {
  it('answers 202 with the delivery and the queued runs of the jobs whose secret verifies', async () => {
    const body = JSON.stringify(githubPush({ repo: 'Acme/Web', after: sha }));
    const headers = await githubHeaders(body, WEB_SECRET);
    const reply = await hook.post('github', body, headers);
    expect(reply.status).toBe(202);
    expect(reply.json).toEqual({ delivery: headers['x-github-delivery'], runs: [{ id: expect.stringMatching(/^[0-9a-z]{26}$/), job: 'web' }] });
    const [run] = reply.json.runs as Array<{ id: string }>;
    const record = await waitForRun(join(dir, 'state'), 'web', run?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', sha, deployedSha: sha, ref: 'refs/heads/main', trigger: { provider: 'github', delivery: headers['x-github-delivery'] } });
  });

  it('verifies each candidate job with its own secret', async () => {
    const body = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, OPS_SECRET));
    expect(reply.status).toBe(202);
    expect((reply.json.runs as Array<{ job: string }>).map((run) => run.job)).toEqual(['web-ops']);
  });

  const refused: Array<{ name: string; headers: (body: string) => Promise<Record<string, string>> }> = [
    { name: 'no signature header', headers: async (body) => withoutSignature(await githubHeaders(body, WEB_SECRET)) },
    { name: 'an empty signature', headers: async (body) => ({ ...(await githubHeaders(body, WEB_SECRET)), 'x-hub-signature-256': 'sha256=' }) },
    { name: 'a SHA-1 signature', headers: async (body) => ({ ...(await githubHeaders(body, WEB_SECRET)), 'x-hub-signature-256': `sha1=${'a'.repeat(40)}` }) },
    { name: 'a non-hex signature', headers: async (body) => ({ ...(await githubHeaders(body, WEB_SECRET)), 'x-hub-signature-256': `sha256=${'z'.repeat(64)}` }) },
    { name: 'a truncated signature', headers: async (body) => ({ ...(await githubHeaders(body, WEB_SECRET)), 'x-hub-signature-256': (await githubHeaders(body, WEB_SECRET))['x-hub-signature-256']?.slice(0, -2) ?? '' }) },
    { name: 'a signature made with the wrong secret', headers: (body) => githubHeaders(body, 'not-the-secret-0123456789') },
    { name: 'the secret of a job of another repository', headers: (body) => githubHeaders(body, LAB_TOKEN) },
  ];

  it.each(refused)('answers 401 to $name, queues nothing and reveals nothing', async ({ headers }) => {
    const body = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const reply = await hook.post('github', body, await headers(body));
    expect(reply.status).toBe(401);
    expect(reply.json).toEqual({ delivery: expect.any(String), error: 'signature verification failed' });
    expect(await runFiles()).toEqual([]);
    expectNoSecretLeaked(JSON.stringify(reply.json), hook.logLines.join('\n'));
  });

  it("answers 200 to a push signed with a job's secret for a repository no job has (an organisation's hook), 401 to one signed otherwise", async () => {
    const body = JSON.stringify(githubPush({ repo: 'acme/unknown', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, OPS_SECRET));
    expect(reply).toMatchObject({ status: 200, json: { runs: [], reason: 'no job is configured for repository "acme/unknown"' } });
    const unsigned = await hook.post('github', body, await githubHeaders(body, 'not-the-secret-0123456789'));
    expect(unsigned).toMatchObject({ status: 401, json: { error: 'signature verification failed' } });
    expect(await runFiles()).toEqual([]);
  });

  it("answers an organisation hook's ping, which names no repository: 200 when signed with a job's secret", async () => {
    const body = JSON.stringify(githubOrganisationPing());
    expect(JSON.parse(body)).not.toHaveProperty('repository');
    const reply = await hook.post('github', body, await githubHeaders(body, WEB_SECRET, 'ping'));
    expect(reply).toMatchObject({ status: 200, json: { runs: [], reason: 'test delivery received: the hook is set up, nothing to deploy' } });
    expect((await hook.post('github', body, await githubHeaders(body, LAB_TOKEN, 'ping'))).status).toBe(401);
    // Any other event that names no repository: an event not deployed is answered 200, a push must name one.
    const member = JSON.stringify({ ...githubOrganisationPing(), action: 'member_added' });
    expect(await hook.post('github', member, await githubHeaders(member, WEB_SECRET, 'organization'))).toMatchObject({ status: 200, json: { runs: [], reason: expect.stringMatching(/^event "organization" is not deployed/) } });
    expect(await hook.post('github', member, await githubHeaders(member, WEB_SECRET, 'push'))).toMatchObject({ status: 400, json: { error: 'expected the payload to name its repository' } });
  });

  it("with more different secrets than are tried before parsing, tries a repository without a job against its owner's secrets (an organisation's hook)", async () => {
    const many = await tempDir();
    const secrets = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`SECRET_${i}`, `${WEB_SECRET}-${i}`]));
    const job = (name: string, repo: string, secret: string) => ({ name, provider: 'github', repo, branches: ['main'], secret_env: secret, remote: remote.bare, command: ['true'] });
    // 16 owners with a secret each, and the organisation acme, whose two jobs share one.
    const jobs = [...Array.from({ length: 16 }, (_, i) => job(`solo-${i}`, `owner-${i}/app`, `SECRET_${i}`)), job('acme-a', 'acme/a', 'SECRET_16'), job('acme-b', 'acme/b', 'SECRET_16')];
    const distinct = await startDaemon(many, { jobs }, secrets);
    const push = (repo: string) => JSON.stringify(githubPush({ repo, after: sha }));
    try {
      expect(await distinct.post('github', push('acme/unknown'), await githubHeaders(push('acme/unknown'), `${WEB_SECRET}-16`))).toMatchObject({ status: 200, json: { runs: [], reason: 'no job is configured for repository "acme/unknown"' } });
      expect((await distinct.post('github', push('acme/unknown'), await githubHeaders(push('acme/unknown'), `${WEB_SECRET}-3`))).status).toBe(401);
      expect((await distinct.post('github', push('nobody/unknown'), await githubHeaders(push('nobody/unknown'), `${WEB_SECRET}-16`))).status).toBe(401);
      const known = JSON.stringify(githubPush({ repo: 'owner-3/app', ref: 'refs/heads/other', after: sha }));
      expect((await distinct.post('github', known, await githubHeaders(known, `${WEB_SECRET}-3`))).status).toBe(200);
    } finally {
      await distinct.stop();
    }
    const shared = await startDaemon(await tempDir(), { jobs: Array.from({ length: 40 }, (_, i) => job(`app-${i}`, `acme/app-${i}`, 'SECRET_0')) }, secrets);
    try {
      expect(await shared.post('github', push('elsewhere/unknown'), await githubHeaders(push('elsewhere/unknown'), `${WEB_SECRET}-0`))).toMatchObject({ status: 200, json: { runs: [] } });
      expect((await shared.post('github', push('acme/unknown'), await githubHeaders(push('acme/unknown'), `${WEB_SECRET}-1`))).status).toBe(401);
    } finally {
      await shared.stop();
    }
  });

  it('answers 401 when the body was changed after signing', async () => {
    const body = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const headers = await githubHeaders(body, WEB_SECRET);
    const reply = await hook.post('github', body.replace('"refs/heads/main"', '"refs/heads/release/x"'), headers);
    expect(reply.status).toBe(401);
  });

  it('answers pings, other events, deletions and unwanted branches with 200 and the reason', async () => {
    const cases: Array<{ event: string; payload: Record<string, unknown>; reason: RegExp }> = [
      { event: 'ping', payload: githubPing('acme/web'), reason: /^test delivery received/ },
      { event: 'issues', payload: githubPush({ repo: 'acme/web', after: sha }), reason: /^event "issues" is not deployed/ },
      { event: 'push', payload: { ...githubPush({ repo: 'acme/web', after: '0'.repeat(40), before: sha }), deleted: true }, reason: /^branch main was deleted/ },
      { event: 'push', payload: githubPush({ repo: 'acme/web', ref: 'refs/heads/feature/x', after: sha }), reason: /^no job deploys branch "feature\/x" of acme\/web$/ },
      { event: 'push', payload: githubPush({ repo: 'acme/web', ref: 'refs/tags/v1.0.0', after: sha }), reason: /^no job deploys tag "v1.0.0"/ },
      { event: 'push', payload: githubPush({ repo: 'acme/web', ref: 'refs/heads/HEAD', after: sha }), reason: /^a branch named HEAD is not deployed/ },
    ];
    for (const { event, payload, reason } of cases) {
      const body = JSON.stringify(payload);
      const reply = await hook.post('github', body, await githubHeaders(body, WEB_SECRET, event));
      expect(reply.status, event).toBe(200);
      expect(reply.json).toEqual({ delivery: expect.any(String), runs: [], reason: expect.stringMatching(reason) });
    }
    expect(await runFiles()).toEqual([]);
  });

  it('answers 400 to malformed JSON and to pushes without the fields a deploy needs', async () => {
    const bodies = [
      '{"repository": {"full_name": "acme/web"}, "ref": ',
      JSON.stringify({ ref: 'refs/heads/main', after: sha }),
      JSON.stringify({ ...githubPush({ repo: 'acme/web', after: sha }), ref: undefined }),
      JSON.stringify(githubPush({ repo: 'acme/web', ref: 'main', after: sha })),
      JSON.stringify(githubPush({ repo: 'acme/web', ref: 'refs/heads/a..b', after: sha })),
      JSON.stringify(githubPush({ repo: 'acme/web', after: 'HEAD~1' })),
      JSON.stringify(githubPush({ repo: 'acme/web', after: `--upload-pack=touch ${join(dir, 'pwned')}` })),
    ];
    for (const body of bodies) {
      const reply = await hook.post('github', body, await githubHeaders(body, WEB_SECRET));
      expect(reply.status, body.slice(0, 60)).toBe(400);
    }
    expect(await runFiles()).toEqual([]);
  });

  it('refuses a body over the limit with 413, declared or chunked', async () => {
    const big = JSON.stringify({ ...githubPush({ repo: 'acme/web', after: sha }), padding: 'x'.repeat(100 * 1024) });
    const declared = await hook.post('github', big, await githubHeaders(big, WEB_SECRET));
    expect(declared.status).toBe(413);

    const chunked = await new Promise<number>((resolve, reject) => {
      const req = request(`${hook.url}/hooks/github`, { method: 'POST', headers: { 'transfer-encoding': 'chunked', 'content-type': 'application/json', 'x-github-event': 'push', 'x-hub-signature-256': `sha256=${'0'.repeat(64)}` } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      for (let i = 0; i < 100; i += 1) req.write('x'.repeat(1024));
      req.end();
    });
    expect(chunked).toBe(413);
  });

  it('accepts GitHub\'s form-encoded deliveries, verifying the raw form and handing the command the JSON', async () => {
    const json = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const body = `payload=${encodeURIComponent(json)}`;
    const reply = await hook.post('github', body, { ...(await githubHeaders(body, WEB_SECRET)), 'content-type': 'application/x-www-form-urlencoded' });
    expect(reply.status).toBe(202);
    const record = await waitForRun(join(dir, 'state'), 'web', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    expect(record.status).toBe('succeeded');
    expect(await readFile(record.eventFile, 'utf8')).toBe(json);
  });

  it('answers 415 to a body that is neither JSON nor a form, with a hint, before reading it', async () => {
    const body = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const reply = await hook.post('github', body, { ...(await githubHeaders(body, WEB_SECRET)), 'content-type': 'text/plain' });
    expect(reply.status).toBe(415);
    expect(reply.json.error).toMatch(/set the content type to application\/json/);
    expect(await runFiles()).toEqual([]);
  });

  it('answers 405 with Allow: POST to other methods', async () => {
    const response = await fetch(`${hook.url}/hooks/github`);
    expect(response.status).toBe(405);
    expect(response.headers.get('allow')).toBe('POST');
  });

  it('logs one line per delivery with its id, provider, repo, ref and decision, and never a secret', async () => {
    const body = JSON.stringify(githubPush({ repo: 'acme/web', ref: 'refs/heads/feature/y', after: sha }));
    const headers = await githubHeaders(body, WEB_SECRET);
    await hook.post('github', body, headers);
    const lines = parsedLines(hook).filter((line) => line.msg === 'delivery');
    expect(lines).toEqual([expect.objectContaining({ delivery: headers['x-github-delivery'], provider: 'github', repo: 'acme/web', ref: 'refs/heads/feature/y', decision: 'ignored', status: 200 })]);
    expectNoSecretLeaked(hook.logLines.join('\n'));
  });

  it('logs at most 100 deliveries a second that deploy nothing, counts the rest in one line, and still logs every queued one', async () => {
    const flood = 300;
    const ignored = JSON.stringify(githubPush({ repo: 'acme/web', ref: 'refs/heads/feature/z', after: sha }));
    // Half for a branch no job wants (signed), half with a wrong signature.
    const statuses = await inBatches(flood, async (i) => (await hook.post('github', ignored, await githubHeaders(ignored, i % 2 === 0 ? WEB_SECRET : 'not-the-secret-0123456789'))).status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(flood / 2);
    expect(statuses.filter((status) => status === 401)).toHaveLength(flood / 2);

    const queuedBody = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const queuedHeaders = await githubHeaders(queuedBody, WEB_SECRET);
    expect((await hook.post('github', queuedBody, queuedHeaders)).status).toBe(202);

    const tally = () => {
      const lines = parsedLines(hook);
      const counted = lines.filter((line) => line.leftOut !== undefined);
      const delivered = lines.filter((line) => line.msg === 'delivery');
      const quiet = delivered.filter((line) => line.decision === 'ignored' || line.decision === 'rejected');
      return { counted, delivered, quiet, leftOut: leftOutCount(lines) };
    };
    // A second's count is written when the second ends: wait for every one the flood started.
    let { counted, delivered, quiet, leftOut } = tally();
    for (let waited = 0; waited < 3_000 && quiet.length + leftOut < flood; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      ({ counted, delivered, quiet, leftOut } = tally());
    }
    expect(counted.length).toBeGreaterThan(0);
    expect(counted.every((line) => line.level === 40)).toBe(true);
    expect(leftOut).toBeGreaterThan(0);
    expect(quiet.length + leftOut).toBe(flood);
    // The first 100 of the flood are logged; the 101st only in a second that began 1 s after the
    // first: a delivery sent a second after the first logged one is.
    expect(quiet.length).toBeGreaterThanOrEqual(100);
    const first = quiet[0]?.time as number;
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first + 1_100 - Date.now())));
    const laterHeaders = await githubHeaders(ignored, WEB_SECRET);
    expect((await hook.post('github', ignored, laterHeaders)).status).toBe(200);
    await until('the later delivery to be logged', () => tally().quiet.some((line) => line.delivery === laterHeaders['x-github-delivery']));
    const times = tally().quiet.map((line) => line.time as number);
    expect(times.length).toBeGreaterThan(100);
    expect((times[100] ?? 0) - first).toBeGreaterThanOrEqual(990);
    expect(delivered).toContainEqual(expect.objectContaining({ delivery: queuedHeaders['x-github-delivery'], decision: 'queued', status: 202 }));
  });

  it('writes the count of a flood at shutdown, without waiting for the second to end', async () => {
    const other = await startDaemon(await tempDir(), { jobs: [{ name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'WEB_SECRET', remote: remote.bare, command: ['true'] }] }, { WEB_SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    const headers = await githubHeaders(body, 'not-the-secret-0123456789');
    const flood = 120;
    try {
      const statuses = await inBatches(flood, async () => (await other.post('github', body, headers)).status);
      expect(statuses.every((status) => status === 401)).toBe(true);
      await other.stop();
      const lines = parsedLines(other);
      const logged = lines.filter((line) => line.msg === 'delivery' && line.decision === 'rejected').length;
      const counted = leftOutCount(lines, 'rejected');
      expect(counted).toBeGreaterThan(0);
      expect(logged + counted).toBe(flood);
    } finally {
      await other.stop();
    }
  });
});

describe('POST /hooks/gitlab', () => {
  it('queues a push whose X-Gitlab-Token matches, matching group/sub/name case-insensitively', async () => {
    const reply = await hook.post('gitlab', JSON.stringify(gitlabPush({ repo: 'Acme/Platform/Lab', after: sha })), gitlabHeaders(LAB_TOKEN));
    expect(reply.status).toBe(202);
    const [run] = reply.json.runs as Array<{ id: string; job: string }>;
    expect(run?.job).toBe('lab');
    expect(await waitForRun(join(dir, 'state'), 'lab', run?.id ?? '')).toMatchObject({ status: 'succeeded', deployedSha: sha, trigger: { provider: 'gitlab', pusher: 'jsmith' } });
  });

  it('answers 401 to a missing, empty or wrong token', async () => {
    const body = JSON.stringify(gitlabPush({ repo: 'acme/platform/lab', after: sha }));
    const { 'x-gitlab-token': _omitted, ...noToken } = gitlabHeaders(LAB_TOKEN);
    for (const headers of [noToken, gitlabHeaders(''), gitlabHeaders(`${LAB_TOKEN}x`), gitlabHeaders(LAB_TOKEN.slice(0, -1))]) {
      const reply = await hook.post('gitlab', body, headers);
      expect(reply.status).toBe(401);
    }
    expect(await runFiles()).toEqual([]);
  });

  it("answers 200 to events that are not pushes, also a group's events that name no project, so GitLab never turns the hook off", async () => {
    // A group hook's member event, as GitLab documents it (test/fixtures/gitlab/member.json): no `project`.
    const member = readFileSync(new URL('../fixtures/gitlab/member.json', import.meta.url), 'utf8');
    expect(await hook.post('gitlab', member, gitlabHeaders(LAB_TOKEN, 'Member Hook'))).toMatchObject({ status: 200, json: { runs: [], reason: expect.stringMatching(/^event "Member Hook" is not deployed/) } });
    expect((await hook.post('gitlab', member, gitlabHeaders(WEB_SECRET, 'Member Hook'))).status).toBe(401);
    // A group hook's push for a project without a job.
    const other = JSON.stringify(gitlabPush({ repo: 'acme/platform/other', after: sha }));
    expect(await hook.post('gitlab', other, gitlabHeaders(LAB_TOKEN))).toMatchObject({ status: 200, json: { runs: [], reason: 'no job is configured for repository "acme/platform/other"' } });
    expect(await runFiles()).toEqual([]);
  });
});

describe('other routes', () => {
  it('GET /healthz answers 200', async () => {
    const response = await fetch(`${hook.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('an unknown provider is 404', async () => {
    const reply = await hook.post('gitbucket', '{}', {});
    expect(reply.status).toBe(404);
  });
});

function withoutSignature(headers: Record<string, string>): Record<string, string> {
  const { 'x-hub-signature-256': _omitted, ...rest } = headers;
  return rest;
}
