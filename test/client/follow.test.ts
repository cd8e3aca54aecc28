import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ApiClient } from '../../src/client/api-client.js';
import { showLog, type FollowOptions } from '../../src/client/commands.js';
import { DeployhookError } from '../../src/errors.js';
import { freePort } from '../helpers/ports.js';

const RUN = '01jd6v8m1c9k4q7w2x5y8z0abc';
let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A stand-in for the daemon (or for a proxy in front of it) on a real port: its URL. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handle);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const record = (res: ServerResponse, status: string) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ run: { id: RUN, job: 'app', status } }));
const quick: FollowOptions = { retryForMs: 1500, pause: (ms) => new Promise((resolve) => setTimeout(resolve, ms / 50)) };

async function follow(url: string): Promise<{ status: Promise<string>; output: () => string; notes: string[] }> {
  const chunks: Buffer[] = [];
  const notes: string[] = [];
  const status = showLog(new ApiClient(url, 'token-0123456789abcdef'), RUN, true, (chunk) => chunks.push(Buffer.from(chunk)), (line) => notes.push(line), quick);
  return { status, output: () => Buffer.concat(chunks).toString(), notes };
}

describe('logs -f against what a network does to a stream', () => {
  it('prints a log once behind a proxy that drops the query string (no offset, no follow)', async () => {
    const log = ['line 1\n', 'line 2 — ünïcode\n', 'line 3\n'];
    let asked = 0;
    const url = await serve((req, res) => {
      // Each answer is the whole log so far, from byte 0, and ends at once: the proxy lost ?follow=1&offset=N.
      if (req.url?.includes('/log')) return res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(log.slice(0, Math.min(++asked, log.length)).join(''));
      record(res, asked >= log.length ? 'succeeded' : 'running');
    });
    const { status, output, notes } = await follow(url);
    expect(await status).toBe('succeeded');
    expect(output()).toBe(log.join(''));
    expect(notes).toEqual([]);
  });

  it.each([
    { what: 'repeated', fields: { retriedBy: 'repeat' }, note: 'run repeat repeats it: deployhook logs repeat -f' },
    { what: 'left to a newer run', fields: { supersededBy: 'newer' }, note: 'follow that one: deployhook logs newer -f' },
  ])('names the run to follow next when the run it follows was interrupted and $what', async ({ fields, note }) => {
    const url = await serve((req, res) => {
      if (req.url?.includes('/log')) return res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('begin\n');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ run: { id: RUN, job: 'app', status: 'interrupted', reason: 'the daemon stopped', ...fields } }));
    });
    const { status, output, notes } = await follow(url);
    expect(await status).toBe('interrupted');
    expect(output()).toBe('begin\n');
    expect(notes).toEqual([`run ${RUN} of job app is interrupted: the daemon stopped; ${note}`]);
  });

  it('gives up, saying so once, when every stream breaks as soon as it opens', async () => {
    let opened = 0;
    const url = await serve((req, res) => {
      if (!req.url?.includes('/log')) return record(res, 'running');
      opened += 1;
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-log-offset': '0' });
      res.flushHeaders();
      setImmediate(() => res.destroy());
    });
    const { status, notes } = await follow(url);
    await expect(status).rejects.toMatchObject({ code: 'STREAM_CLOSED' });
    expect(notes).toEqual([`The connection to deployhook at ${url} closed before the run ended; trying again for up to 2 s`]);
    // Asked every second of the budget (a fiftieth of it here), not in a tight loop.
    expect(opened).toBeGreaterThan(2);
    expect(opened).toBeLessThan(100);
  });

  it('is an error at once when the daemon never answered (a wrong URL)', async () => {
    const { status, notes } = await follow(`http://127.0.0.1:${await freePort()}`);
    const error = await status.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DeployhookError);
    expect(error).toMatchObject({ code: 'DAEMON_UNREACHABLE' });
    expect(notes).toEqual([]);
  });

  it('says so when the run is removed between the end of its log and the question of how it ended', async () => {
    const url = await serve((req, res) => {
      if (req.url?.includes('/log')) return res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('all of it\n');
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no run "${RUN}"` }));
    });
    const { status, output, notes } = await follow(url);
    expect(await status).toBe('removed');
    expect(output()).toBe('all of it\n');
    expect(notes).toEqual([`run ${RUN} is no longer kept: keep_runs removed it as its log ended, and how it ended is not known here (deployhook runs lists what is kept)`]);
  });

  it('says so too when the run is removed while its log is asked for again', async () => {
    let logs = 0;
    const url = await serve((req, res) => {
      // The first stream ends early (a proxy), the run goes on; by the next question it is gone.
      if (req.url?.includes('/log') && (logs += 1) === 1) return res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('part\n');
      if (req.url?.includes('/log')) return res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no run "${RUN}"` }));
      record(res, 'running');
    });
    const { status, output, notes } = await follow(url);
    expect(await status).toBe('removed');
    expect(output()).toBe('part\n');
    expect(notes).toEqual([expect.stringMatching(/^run \w+ is no longer kept: keep_runs removed it/)]);
  });

  it('does not ask again for what the daemon refuses: a run it does not know', async () => {
    let asked = 0;
    const url = await serve((_req, res) => {
      asked += 1;
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `no run "${RUN}"` }));
    });
    const { status } = await follow(url);
    await expect(status).rejects.toMatchObject({ code: 'API_NOT_FOUND', message: `no run "${RUN}" (HTTP 404)` });
    expect(asked).toBe(1);
  });
});
