import { afterEach, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../../src/ui/routes.js';
import { escapeHtml, html } from '../../src/ui/html.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git, type TestRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'ui-webhook-secret-0123456789abcdef';
const TOKEN = 'ui-operator-token-0123456789abcdef';
const READER = 'ui-read-only-token-0123456789abcdef';
const XSS_BRANCH = '<script>alert(1)</script>';
const XSS_PUSHER = '<img src=x onerror=alert(2)>';

let daemon: TestDaemon | undefined;

afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const basic = (password: string) => ({ authorization: `Basic ${Buffer.from(`x:${password}`).toString('base64')}` });

async function start(): Promise<{ url: string; stateDir: string; remote: TestRemote }> {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['**'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] };
  daemon = await startDaemon(dir, { api: { token_env: 'API_TOKEN', ui_token_env: 'UI_TOKEN' }, jobs: [job] }, { API_TOKEN: TOKEN, UI_TOKEN: READER, SECRET });
  return { url: daemon.url, stateDir: daemon.config.stateDir, remote };
}

/** Sends a signed push of `ref` at `sha` by `pusher` and waits until its run has finished and the job is idle. */
async function pushAndWait(stateDir: string, ref: string, sha: string, pusher = 'octocat'): Promise<string> {
  const payload = githubPush({ repo: 'acme/app', ref, after: sha });
  (payload.pusher as Record<string, unknown>).name = pusher;
  const body = JSON.stringify(payload);
  const response = await daemon!.post('github', body, await githubHeaders(body, SECRET));
  expect(response.status).toBe(202);
  const id = (response.json.runs as Array<{ id: string }>)[0]?.id ?? '';
  expect((await waitForRun(stateDir, 'app', id)).status).toBe('succeeded');
  // The record is final on disk a moment before the queue lets go of the run.
  await until('the job to be idle', async () => {
    const { jobs } = (await (await fetch(`${daemon!.url}/api/jobs`, { headers: basic(TOKEN) })).json()) as { jobs: Array<{ state: string }> };
    return jobs[0]?.state === 'idle';
  });
  return id;
}

async function page(url: string, headers: Record<string, string> = basic(TOKEN)): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(url, { headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

describe('the html template tag', () => {
  it('escapes every interpolated value, keeps markup it made itself, and joins lists', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
    const inner = html`<b>${'<i>'}</b>`;
    expect(html`<p title="${'" onclick="x'}">${inner}${[html`<br>`, '&']}${null}${undefined}${7}</p>`.toString()).toBe(
      '<p title="&quot; onclick=&quot;x"><b>&lt;i&gt;</b><br>&amp;7</p>',
    );
  });
});

describe('the status page', () => {
  it('shows the jobs and runs to a browser that sends the token as the Basic password, under a strict CSP', async () => {
    const { url, stateDir, remote } = await start();
    const sha = await remote.commit({ 'README.md': 'hello\n' });
    const id = await pushAndWait(stateDir, 'refs/heads/main', sha);

    const index = await page(`${url}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(CONTENT_SECURITY_POLICY).toBe("default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    expect(index.text).toContain('<meta name="viewport"');
    expect(index.text).toContain(`<td class="strong">app</td><td><span class="badge badge-idle">idle</span> <span class="muted">last</span> <a href="runs/${id}"><span class="badge badge-succeeded" title="last run">succeeded</span></a></td>`);
    expect(index.text).toContain('<td>acme/app</td><td>**</td></tr>');
    expect(index.text).toContain(`<a href="runs/${id}"><code>${id}</code></a>`);
    expect(index.text).toContain('<span class="badge badge-succeeded">succeeded</span>');
    expect(index.text).toContain(`<code>${sha.slice(0, 7)}</code>`);
    expect(index.text).not.toMatch(/<style|style=|<script>|\son[a-z]+=/);

    const run = await page(`${url}/runs/${id}`);
    expect(run.status).toBe(200);
    expect(run.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(run.text).toContain(`<body data-page="run" data-run-id="${id}">`);
    expect(run.text).toContain(`<dt>Commit requested</dt><dd class="mono">${sha}</dd>`);
    expect(run.text).toContain(`<dd data-field="deployedSha" class="mono">${sha}</dd>`);
    expect(run.text).toContain('<dd data-field="exit">exit code 0</dd>');
    expect(run.text).toContain('<pre id="log"');

    const reader = await page(`${url}/runs/${id}`, basic(READER));
    expect(reader.status).toBe(200);
  });

  it('serves its stylesheet and script from its own origin, not cached', async () => {
    const { url } = await start();
    for (const [path, type] of [['/assets/deployhook.css', 'text/css; charset=utf-8'], ['/assets/deployhook.js', 'text/javascript; charset=utf-8']] as const) {
      const asset = await page(`${url}${path}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('content-type')).toBe(type);
      expect(asset.headers.get('cache-control')).toBe('no-store');
      expect(asset.headers.get('x-content-type-options')).toBe('nosniff');
      expect(asset.text.length).toBeGreaterThan(500);
    }
    expect((await page(`${url}/assets/deployhook.js`)).text).not.toContain('innerHTML');
  });

  it('asks a browser for the token with 401 and WWW-Authenticate: Basic when it is missing or wrong', async () => {
    const { url } = await start();
    for (const path of ['/', '/runs/01jd6v8m1c9k4q7w2x5y8z0abc', '/assets/deployhook.js']) {
      for (const headers of [{}, basic('wrong-token-0123456789abcdef'), { authorization: `Bearer ${TOKEN.slice(1)}` }]) {
        const response = await page(`${url}${path}`, headers);
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toMatch(/^Basic realm="deployhook"/);
        expect(response.text).not.toContain('acme/app');
      }
    }
    expect((await page(`${url}/healthz`, {})).status).toBe(200);
  });

  it('escapes a hostile branch name and pusher wherever they appear', async () => {
    const { url, stateDir, remote } = await start();
    const sha = await remote.commit({ 'README.md': 'hello\n' });
    await git(remote.work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${XSS_BRANCH}`);
    const id = await pushAndWait(stateDir, `refs/heads/${XSS_BRANCH}`, sha, XSS_PUSHER);

    for (const path of ['/', `/runs/${id}`]) {
      const { status, text } = await page(`${url}${path}`);
      expect(status).toBe(200);
      expect(text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(text).toContain('webhook by &lt;img src=x onerror=alert(2)&gt;');
      expect(text).not.toContain('<script>');
      expect(text).not.toContain('<img');
      expect(text.match(/<script/g)).toEqual(['<script']);
      expect(text).toContain('<script src="assets/deployhook.js" defer></script>');
    }
  });

  it('sends a run page asked for with a trailing slash to its own URL, relative to where it was asked', async () => {
    const { url } = await start();
    const response = await fetch(`${url}/runs/01jd6v8m1c9k4q7w2x5y8z0abc/`, { headers: basic(TOKEN), redirect: 'manual' });
    expect(response.status).toBe(301);
    expect(response.headers.get('location')).toBe('../01jd6v8m1c9k4q7w2x5y8z0abc');
    expect(new URL(response.headers.get('location') ?? '', response.url).pathname).toBe('/runs/01jd6v8m1c9k4q7w2x5y8z0abc');
  });

  it('answers an unknown run with a 404 page and leaves every other path to the routes after it', async () => {
    const { url } = await start();
    const missing = await page(`${url}/runs/nope`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(missing.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(missing.text).toContain('There is no run &quot;nope&quot;');
    const hostile = await page(`${url}/runs/${encodeURIComponent('<b>x</b>')}`);
    expect(hostile.status).toBe(404);
    expect(hostile.text).toContain('&quot;&lt;b&gt;x&lt;/b&gt;&quot;');

    const other = await fetch(`${url}/nope`, { headers: basic(TOKEN) });
    expect(other.status).toBe(404);
    expect(await other.json()).toEqual({ error: 'no route for GET /nope' });
    const api = await fetch(`${url}/api/jobs`, { headers: basic(TOKEN) });
    expect(api.status).toBe(200);
  });
});
