import { writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterEach, describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium } from '../helpers/browser.js';
import { startServe, type ServeProcess } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote, type TestRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const SECRET = 'browser-webhook-secret-0123456789abcdef';
const TOKEN = 'browser-operator-token-0123456789abcdef';
const XSS_BRANCH = '<script>alert(1)</script>';
// The run log holds back its last (longest secret - 1) bytes while a run goes on, in case a
// secret is split across writes: long lines make each step's start visible at once regardless.
const PAD = '.'.repeat(60);
// Three steps, then wait until the test opens the gate, then two more: the run is still running while the page watches.
const STEP_LINES = [1, 2, 3, 4, 5].map((step) => `step ${step} ${PAD}\n`).join('');
const STEPS = `for i in 1 2 3; do echo "step $i ${PAD}"; sleep 0.3; done; while [ ! -e "$WORK/gate" ]; do sleep 0.1; done; echo "step 4 ${PAD}"; sleep 0.5; echo "step 5 ${PAD}"`;

let daemon: ServeProcess | undefined;
let browser: Browser | undefined;
let proxy: Server | undefined;

afterEach(async () => {
  proxy?.closeAllConnections();
  proxy?.close();
  proxy = undefined;
  await browser?.close();
  await daemon?.stop();
  browser = undefined;
  daemon = undefined;
});

async function push(url: string, repo: string, ref: string, sha: string): Promise<string> {
  const body = JSON.stringify(githubPush({ repo, ref, after: sha }));
  const response = await fetch(`${url}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
  expect(response.status).toBe(202);
  return ((await response.json()) as { runs: Array<{ id: string }> }).runs[0]?.id ?? '';
}

/** Starts the daemon on GitHub jobs of one remote, with the operator token; its URL. */
async function serve(dir: string, remote: string, jobs: Array<Record<string, unknown>>, api: Record<string, string> = { token_env: 'API_TOKEN' }): Promise<string> {
  const config = join(dir, 'deployhook.yml');
  const job = { provider: 'github', secret_env: 'SECRET', remote, kill_grace: '1s' };
  await writeConfigFile(config, { shutdown_timeout: '1s', api, jobs: jobs.map((each) => ({ ...job, ...each })) });
  daemon = await startServe(['--config', config], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, SECRET, API_TOKEN: TOKEN } });
  return `http://127.0.0.1:${daemon.port}`;
}

/**
 * A daemon with one job that prints step 1, waits for the file `gate` in `dir`, then prints
 * step 2, and one push of it.
 */
async function gatedRun(): Promise<{ dir: string; url: string; id: string; remote: TestRemote }> {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'README.md': 'hello\n' });
  const steps = `echo "step 1 ${PAD}"; while [ ! -e "$WORK/gate" ]; do sleep 0.1; done; echo "step 2 ${PAD}"`;
  const url = await serve(dir, remote.bare, [{ name: 'app', repo: 'acme/app', branches: ['main'], command: ['sh', '-c', steps], env: { WORK: dir } }]);
  return { dir, url, remote, id: await push(url, 'acme/app', 'refs/heads/main', sha) };
}

/**
 * A reverse proxy in front of the daemon at `url` that serves it under /deployhook/, as nginx's
 * `location /deployhook/ { proxy_pass http://127.0.0.1:9000/; }` does; with `dropQuery`, one
 * that loses the query string (nginx's `proxy_pass` with variables does). Its URL.
 */
async function startProxy(url: string, options: { dropQuery?: boolean } = {}): Promise<string> {
  const target = new URL(url);
  proxy = createServer((req, res) => {
    if (!req.url?.startsWith('/deployhook/')) return void res.writeHead(404).end('not the daemon');
    const path = req.url.slice('/deployhook'.length);
    const forward = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: options.dropQuery ? path.replace(/\?.*$/, '') : path, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/deployhook/`;
}

/** A run's status, as the API tells it. */
async function runStatus(url: string, id: string): Promise<string> {
  const response = await fetch(`${url}/api/runs/${id}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return ((await response.json()) as { run: { status: string } }).run.status;
}

/** A page of a new browser that answers the daemon's request for the token. */
async function openPage(): Promise<Page> {
  browser = await launchChromium();
  const session = await browser.newContext({ httpCredentials: { username: 'operator', password: TOKEN } });
  return session.newPage();
}

const text = (page: Page, selector: string) => page.locator(selector).first().textContent();

/**
 * Whether the run page shows, at one moment, step `step` of the log but not the next one,
 * while its badge says running. Steps are matched at the start of a line: the log's header
 * quotes the command, which names every step.
 */
async function showing(page: Page, step: number): Promise<boolean> {
  const seen = await page.locator('body').evaluate((body) => ({
    log: body.querySelector('#log')?.textContent ?? '',
    status: body.querySelector('#run-status .badge')?.textContent ?? '',
  }));
  return new RegExp(`^step ${step} `, 'm').test(seen.log) && !new RegExp(`^step ${step + 1} `, 'm').test(seen.log) && seen.status === 'running';
}

describe('the status page in a real browser', () => {
  it('is skipped without chromium, except in CI, where a missing chromium is an error', () => {
    const nowhere = '/nonexistent/chromium';
    expect(chromiumMissing({}, nowhere)).toBe(`Expected a chromium at ${nowhere} for the browser tests; install it with: apt-get install chromium`);
    expect(() => chromiumMissing({ CI: 'true' }, nowhere)).toThrow('apt-get install chromium');
  });

  it('shows a pushed run appear, follows its log live while it runs, and ends on its final status, on a desktop and a phone', { timeout: 90_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const dir = await tempDir();
    const shots = process.env.DEPLOYHOOK_SCREENSHOT_DIR ?? dir;
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'README.md': 'hello\n' });
    const url = await serve(dir, remote.bare, [
      { name: 'app', repo: 'acme/app', branches: ['main'], command: ['sh', '-c', STEPS], env: { WORK: dir } },
      { name: 'tools', repo: 'acme/tools', branches: ['**'], command: ['true'] },
    ]);

    browser = await launchChromium();
    const session = await browser.newContext({ httpCredentials: { username: 'operator', password: TOKEN }, viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    const newPage = async () => {
      const opened = await session.newPage();
      opened.on('console', (message) => {
        if (message.type() === 'error') problems.push(`console: ${message.text()}`);
      });
      opened.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
      opened.on('dialog', (dialog) => {
        problems.push(`dialog: ${dialog.message()}`);
        void dialog.dismiss();
      });
      return opened;
    };
    const page = await newPage();

    expect((await page.goto(`${url}/`))?.status()).toBe(200);
    expect(await text(page, '#runs')).toBe('No runs yet.');

    // A hostile branch name (the run fails: the branch is not on the remote) and the real push.
    const hostile = await push(url, 'acme/tools', `refs/heads/${XSS_BRANCH}`, sha);
    const id = await push(url, 'acme/app', 'refs/heads/main', sha);

    // The page's own refresh brings both runs in; the branch name shows as text.
    const link = page.locator(`#runs a[href="runs/${id}"]`);
    await link.waitFor({ timeout: 15_000 });
    await page.locator(`#runs a[href="runs/${hostile}"]`).waitFor({ timeout: 15_000 });
    await expect.poll(() => page.locator('#runs td', { hasText: XSS_BRANCH }).count(), { timeout: 10_000 }).toBe(1);
    expect(await text(page, '#jobs tr:first-child td:first-child')).toBe('app');
    await expect.poll(() => text(page, '#jobs tr:first-child td:nth-child(2)'), { timeout: 10_000 }).toBe('running');
    await page.screenshot({ path: join(shots, 'index-desktop.png'), fullPage: true });

    await link.click();
    await page.waitForURL(`${url}/runs/${id}`);
    const log = page.locator('#log');
    const badge = page.locator('#run-status .badge');
    await expect.poll(() => showing(page, 3), { timeout: 15_000 }).toBe(true);
    expect(await page.locator('[data-field="exit"]').textContent()).toBe('—');
    await page.screenshot({ path: join(shots, 'run-running-desktop.png'), fullPage: true });

    // A push while the run goes on waits as queued; its page shows the log once it starts.
    const next = await remote.commit({ 'README.md': 'again\n' });
    const queuedId = await push(url, 'acme/app', 'refs/heads/main', next);
    const queuedPage = await newPage();
    await queuedPage.goto(`${url}/runs/${queuedId}`);
    expect(await text(queuedPage, '#run-status')).toBe('queued');
    expect(await text(queuedPage, '#log')).toBe('Waiting for the run to start…');

    await writeFile(join(dir, 'gate'), '');
    // The next lines arrive one after the other while the run is still running...
    await expect.poll(() => showing(page, 4), { timeout: 10_000 }).toBe(true);
    // ...and when the stream ends the badge and the record show how the run ended.
    await expect.poll(() => badge.textContent(), { timeout: 10_000 }).toBe('succeeded');
    expect(await log.textContent()).toContain(STEP_LINES);
    expect(await page.locator('[data-field="exit"]').textContent()).toBe('exit code 0');
    expect(await page.locator('[data-field="deployedSha"]').textContent()).toBe(sha);
    await page.screenshot({ path: join(shots, 'run-desktop.png'), fullPage: true });
    await expect.poll(() => text(queuedPage, '#run-status'), { timeout: 15_000 }).toBe('succeeded');
    expect(await text(queuedPage, '#log')).toContain(STEP_LINES);
    expect(await text(queuedPage, '[data-field="deployedSha"]')).toBe(next);

    // On a phone: nothing wider than the screen but the tables, which scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: join(shots, 'run-phone.png'), fullPage: true });
    await page.goto(`${url}/`);
    await page.screenshot({ path: join(shots, 'index-phone.png'), fullPage: true });
    expect(await page.locator('html').evaluate((root) => root.scrollWidth)).toBeLessThanOrEqual(390);
    expect(await page.locator('.scroll').evaluateAll((boxes) => boxes.some((box) => box.scrollWidth > box.clientWidth))).toBe(true);
    expect(await page.locator('.badge-failed').count()).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  });

  it("opened straight from a link, follows a run's log, and shows how the run ended only once the stream has brought the whole log", { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const { dir, url, id } = await gatedRun();
    await expect.poll(() => runStatus(url, id), { timeout: 15_000 }).toBe('running');

    const page = await openPage();
    // The browser is asked for the token at /runs/ and sends it only under that folder unless
    // asked again: the page's requests to /api/ must ask for it in a way a browser answers.
    await page.goto(`${url}/runs/${id}`);
    await expect.poll(() => text(page, '#log'), { timeout: 15_000 }).toMatch(/^step 1 /m);
    // From now on the run's record answers that the run has ended while its command still
    // waits: what the page sees between a run's end and the stream's last bytes, held open.
    let endedAnswers = 0;
    await page.route(`${url}/api/runs/${id}`, async (route) => {
      const response = await route.fetch({ headers: { ...route.request().headers(), authorization: `Bearer ${TOKEN}` } });
      const body = (await response.json()) as { run: Record<string, unknown> };
      endedAnswers += 1;
      await route.fulfill({ response, json: { run: { ...body.run, status: 'succeeded', exitCode: 0, finishedAt: new Date().toISOString() } } });
    });
    // Two of the page's own refreshes, 2 s apart: the first has been shown or skipped by then.
    await expect.poll(() => endedAnswers, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    expect(await text(page, '#run-status .badge')).toBe('running');
    expect(await text(page, '[data-field="exit"]')).toBe('—');
    expect(await text(page, '#log')).not.toMatch(/^step 2 /m);

    await page.unroute(`${url}/api/runs/${id}`);
    await writeFile(join(dir, 'gate'), '');
    await expect.poll(() => text(page, '#run-status .badge'), { timeout: 15_000 }).toBe('succeeded');
    expect(await text(page, '#log')).toMatch(new RegExp(`^step 1 ${PAD}\nstep 2 ${PAD}\n`, 'm'));
  });

  it('takes up a broken log stream from the bytes it has, and holds no stream open while hidden', { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const { dir, url, id } = await gatedRun();

    const page = await openPage();
    const streams: string[] = [];
    const failed: string[] = [];
    page.on('request', (request) => request.url().includes('/log?') && streams.push(new URL(request.url()).search));
    page.on('requestfailed', (request) => request.url().includes('/log?') && failed.push(new URL(request.url()).search));
    // The first stream breaks off before it brings anything (a network that drops).
    let broken = false;
    await page.route(/\/log\?/, (route) => {
      if (broken) return route.continue();
      broken = true;
      return route.abort('connectionreset');
    });
    await page.goto(`${url}/runs/${id}`);
    await expect.poll(() => text(page, '#log'), { timeout: 15_000 }).toMatch(/^step 1 /m);
    expect(streams).toEqual(['?follow=1&offset=0', '?follow=1&offset=0']);

    // Hidden, the page closes its stream; the run ends meanwhile.
    const visibility = (hidden: boolean) =>
      page.locator('body').evaluate((body, value) => {
        const doc = body.ownerDocument;
        Object.defineProperty(doc, 'hidden', { configurable: true, get: () => value });
        doc.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
    await visibility(true);
    await expect.poll(() => failed.length, { timeout: 5_000 }).toBe(2);
    const before = (await text(page, '#log')) ?? '';
    await writeFile(join(dir, 'gate'), '');
    await until('the run to end', async () => (await runStatus(url, id)) === 'succeeded');
    expect(await text(page, '#run-status .badge')).toBe('running');
    expect(streams).toHaveLength(2);

    // Shown again, it asks for the rest only, and shows the whole log once, then the ending.
    await visibility(false);
    await expect.poll(() => text(page, '#run-status .badge'), { timeout: 15_000 }).toBe('succeeded');
    const shown = (await text(page, '#log')) ?? '';
    expect(streams).toHaveLength(3);
    expect(Number(new URLSearchParams(streams[2]).get('offset'))).toBe(Buffer.byteLength(before));
    expect(shown.startsWith(before)).toBe(true);
    expect(shown.match(/^step \d /gm)).toEqual(['step 1 ', 'step 2 ']);
    expect(shown).toMatch(/\[deployhook\] finished: succeeded/);
    expect(await text(page, '#notice')).toBe('');
  });

  it('shows a run that never started as such, with a link to the run that took its place', { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const { dir, url, id, remote } = await gatedRun();
    await until('the first run to start', async () => (await runStatus(url, id)) === 'running');
    const waiting = await push(url, 'acme/app', 'refs/heads/main', await remote.commit({ 'README.md': 'two\n' }));
    const page = await openPage();
    await page.goto(`${url}/runs/${waiting}`);
    expect(await page.locator('#next-run').isVisible()).toBe(false);
    // A newer push while it waits takes its place.
    const newest = await push(url, 'acme/app', 'refs/heads/main', await remote.commit({ 'README.md': 'three\n' }));
    await expect.poll(() => text(page, '#run-status .badge'), { timeout: 15_000 }).toBe('superseded');
    expect(await text(page, '#log')).toBe('(no log: this run never started)');
    expect(await page.locator('#next-run').isVisible()).toBe(true);
    await page.locator('#next-run').click();
    await page.waitForURL(`${url}/runs/${newest}`);
    await writeFile(join(dir, 'gate'), '');
    await expect.poll(() => text(page, '#run-status .badge'), { timeout: 15_000 }).toBe('succeeded');
    // Rendered by the server, too, for a page opened afterwards.
    await page.goto(`${url}/runs/${waiting}`);
    expect(await page.locator('#next-run').getAttribute('href')).toBe(`runs/${newest}`);
  });

  it("works out ages and durations against the daemon's clock, not a browser's that is off by an hour", { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const { dir, url, id } = await gatedRun();
    await until('the run to start', async () => (await runStatus(url, id)) === 'running');
    const page = await openPage();
    await page.clock.install({ time: Date.now() + 3_600_000 });
    // The server renders the first figures: they are crossed out, so that what is checked is
    // what the page's own refresh worked out, with the browser's clock.
    const crossOut = (selector: string) => page.locator(selector).evaluate((node) => void (node.textContent = 'x'));
    const row = `#runs tr:has(a[href="runs/${id}"])`;
    await page.goto(`${url}/`);
    await crossOut(`${row} td:nth-child(8)`);
    await crossOut(`${row} td:nth-child(7)`);
    await expect.poll(() => text(page, `${row} td:nth-child(8)`), { timeout: 10_000 }).toMatch(/^\d+s ago$/);
    expect(await text(page, `${row} td:nth-child(7)`)).toMatch(/^\d+(\.\d)? s$|^\d+ ms$/);
    await page.goto(`${url}/runs/${id}`);
    await crossOut('[data-field="duration"]');
    await expect.poll(() => text(page, '[data-field="duration"]'), { timeout: 10_000 }).toMatch(/^\d+(\.\d)? s$|^\d+ ms$/);
    await writeFile(join(dir, 'gate'), '');
  });

  it('keeps text selected across its refreshes, for copying a run id', { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const { dir, url, id } = await gatedRun();
    const page = await openPage();
    await page.goto(`${url}/`);
    const select = (selector: string) =>
      page.locator(selector).evaluate((node) => {
        const selection = node.ownerDocument.getSelection();
        selection?.selectAllChildren(node);
        return selection?.toString();
      });
    const selected = () => page.locator('body').evaluate((body) => body.ownerDocument.getSelection()?.toString());
    expect(await select(`#runs a[href="runs/${id}"] code`)).toBe(id);
    // Two of the page's refreshes, while the run's age and duration change beside it.
    for (let i = 0; i < 2; i += 1) await page.waitForResponse((response) => response.url().endsWith('/api/runs?limit=20'), { timeout: 10_000 });
    await page.waitForTimeout(200);
    expect(await selected()).toBe(id);

    await page.goto(`${url}/runs/${id}`);
    expect(await select('[data-field="deployedSha"]')).toMatch(/^[0-9a-f]{40}$/);
    const sha = await selected();
    for (let i = 0; i < 2; i += 1) await page.waitForResponse((response) => response.url().endsWith(`/api/runs/${id}`), { timeout: 10_000 });
    await page.waitForTimeout(200);
    expect(await selected()).toBe(sha);
    await writeFile(join(dir, 'gate'), '');
  });

  it('stops asking once the daemon refuses the token, and says to reload', { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const tokenFile = join(dir, 'api-token');
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const url = await serve(dir, remote.bare, [{ name: 'app', repo: 'acme/app', branches: ['main'], command: ['true'] }], { token_file: tokenFile });
    const page = await openPage();
    const asked: number[] = [];
    page.on('response', (response) => response.url().includes('/api/') && asked.push(response.status()));
    await page.goto(`${url}/`);
    await expect.poll(() => asked.length, { timeout: 10_000 }).toBeGreaterThan(0);
    // The operator changes the token and reloads the daemon: the page's is refused from now on.
    await writeFile(tokenFile, `${TOKEN}-new\n`);
    daemon?.process.kill('SIGHUP');
    await expect.poll(() => text(page, '#notice'), { timeout: 15_000 }).toContain('reload the page to sign in again');
    await page.waitForTimeout(7_000); // two more of the page's refreshes, were it still refreshing
    // One refresh asks for the jobs and the runs at once: both refused, and nothing after them.
    expect(asked.filter((status) => status === 401)).toEqual([401, 401]);
    expect(await text(page, '#notice')).toContain('HTTP 401');
  });

  it('shows a log once behind a proxy that loses the query string, and so its offset', { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const { dir, url, id } = await gatedRun();
    const front = await startProxy(url, { dropQuery: true });
    const page = await openPage();
    // Opened straight at a run, through a proxy that joins the 401's two challenges into one line.
    await page.goto(`${front}runs/${id}`);
    await expect.poll(() => text(page, '#log'), { timeout: 15_000 }).toMatch(/^step 1 /m);
    // Each answer is the whole log and ends at once: the page asks again every 2 s.
    await page.waitForResponse((response) => response.url().includes('/log?'), { timeout: 10_000 });
    await page.waitForResponse((response) => response.url().includes('/log?'), { timeout: 10_000 });
    await writeFile(join(dir, 'gate'), '');
    await expect.poll(() => text(page, '#run-status .badge'), { timeout: 15_000 }).toBe('succeeded');
    const shown = (await text(page, '#log')) ?? '';
    expect(shown.match(/^step \d /gm)).toEqual(['step 1 ', 'step 2 ']);
    expect(shown).toBe(await (await fetch(`${url}/api/runs/${id}/log`, { headers: { authorization: `Bearer ${TOKEN}` } })).text());
  });

  it('works behind a reverse proxy that serves it under a path of its own', { timeout: 60_000 }, async (context) => {
    const missing = chromiumMissing();
    if (missing) context.skip(missing);
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'README.md': 'hello\n' });
    const url = await serve(dir, remote.bare, [{ name: 'app', repo: 'acme/app', branches: ['main'], command: ['sh', '-c', `echo "step 1 ${PAD}"`] }]);
    const id = await push(url, 'acme/app', 'refs/heads/main', sha);
    const front = await startProxy(url);

    const page = await openPage();
    const paths: string[] = [];
    page.on('request', (request) => paths.push(new URL(request.url()).pathname));
    await page.goto(front);
    await page.locator(`#runs a[href="runs/${id}"]`).click();
    await page.waitForURL(`${front}runs/${id}`);
    await expect.poll(() => text(page, '#run-status .badge'), { timeout: 15_000 }).toBe('succeeded');
    // A run that ended before the page was asked for comes with its final badge; its log follows.
    await expect.poll(() => text(page, '#log'), { timeout: 15_000 }).toContain(`step 1 ${PAD}\n`);
    // The style sheet applies: the log is laid out as the status page's CSS says.
    expect(await page.locator('#log').evaluate((log) => log.ownerDocument.defaultView?.getComputedStyle(log).whiteSpace)).toBe('pre-wrap');
    await page.locator('.crumbs a').click();
    await page.waitForURL(front);
    await page.waitForRequest((request) => request.url().endsWith('/api/jobs'), { timeout: 10_000 }); // the index's own refresh
    expect(paths.filter((path) => !path.startsWith('/deployhook/'))).toEqual([]);
    expect(paths).toEqual(expect.arrayContaining(['/deployhook/assets/deployhook.css', '/deployhook/assets/deployhook.js', '/deployhook/api/jobs', `/deployhook/api/runs/${id}/log`]));
  });
});
