import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bodyBudgetBytes } from '../../src/http/hook-handler.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const WEB_SECRET = 'web-secret-5b1e9c7a3d0f8264';
const MAX_BODY = 16 * 1024 * 1024;

let dir: string;
let sha: string;
let hook: TestDaemon;
let port: number;

beforeAll(async () => {
  dir = await tempDir();
  const remote = await createRemote(dir);
  sha = await remote.commit({ 'README.md': 'hello\n' });
  hook = await startDaemon(dir, {
    max_body_bytes: MAX_BODY,
    jobs: [{ name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], remote: remote.bare, command: ['true'], secret_env: 'WEB_SECRET' }],
  }, { WEB_SECRET });
  port = Number(new URL(hook.url).port);
});

afterAll(async () => {
  await hook.stop();
});

interface Held {
  socket: Socket;
  /** The status of the reply, once one came; 0 while none has. */
  status: () => number;
  retryAfter: () => string | undefined;
  closed: Promise<void>;
}

/**
 * An unsigned GitHub push (a well-formed signature of zeros) that declares `size` bytes and
 * sends all but the last: the daemon has to hold what it got until the request times out.
 */
function holdBody(size: number): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    const head = () => Buffer.concat(received).toString('latin1');
    socket.on('connect', () => {
      socket.write(
        [
          'POST /hooks/github HTTP/1.1',
          `Host: 127.0.0.1:${port}`,
          'Content-Type: application/json',
          'X-GitHub-Event: push',
          `X-Hub-Signature-256: sha256=${'0'.repeat(64)}`,
          `Content-Length: ${size}`,
          '',
          '',
        ].join('\r\n'),
      );
      // The body in 1 MiB writes, resolved once written (or refused).
      const piece = Buffer.alloc(1024 * 1024, 0x20);
      let left = size - 1;
      const next = (): void => {
        if (left <= 0 || socket.destroyed || received.length > 0) return resolve(held);
        const part = piece.subarray(0, Math.min(piece.length, left));
        left -= part.length;
        if (socket.write(part)) setImmediate(next);
        else socket.once('drain', next);
      };
      next();
    });
    socket.on('close', () => resolve(held));
    const held: Held = {
      socket,
      status: () => Number(/^HTTP\/1\.1 (\d{3})/.exec(head())?.[1] ?? 0),
      retryAfter: () => /\r\nretry-after: *([^\r]*)/i.exec(head())?.[1],
      closed,
    };
    setTimeout(() => reject(new Error('holdBody: not done within 20 s')), 20_000).unref();
  });
}

describe('request bodies held in memory at once', () => {
  it('stops at the shared budget with 503 and Retry-After, and takes bodies again once the held ones are gone', async () => {
    const budget = bodyBudgetBytes(MAX_BODY);
    const size = MAX_BODY - 1024;
    // One more body than the budget holds, each but its last byte: without a shared budget
    // all of them would be held until the request timeout.
    const count = Math.floor(budget / size) + 1;
    const held: Held[] = [];
    for (let i = 0; i < count; i++) held.push(await holdBody(size));
    // Until the daemon has read what was sent, and refused what went past the budget.
    const deadline = Date.now() + 10_000;
    while (!held.some((one) => one.status() !== 0) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    await new Promise((resolve) => setTimeout(resolve, 200));

    const refused = held.filter((one) => one.status() === 503);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const one of refused) expect(one.retryAfter()).toBe('5');
    // The rest are still waiting for their last byte: no reply yet.
    expect(held.filter((one) => one.status() === 0).length).toBe(count - refused.length);

    // The clients give up: their bytes go back to the budget (a push would get 503 otherwise),
    // and a push is taken again.
    for (const one of held) one.socket.destroy();
    await Promise.all(held.map((one) => one.closed));
    const later = JSON.stringify(githubPush({ repo: 'acme/web', after: sha }));
    // The server sees the closes on its next turns: until then a push may still get 503.
    let reply = await hook.post('github', later, await githubHeaders(later, WEB_SECRET));
    await until('a push to be taken again', async () => (reply.status === 503 ? (reply = await hook.post('github', later, await githubHeaders(later, WEB_SECRET))) : reply).status !== 503, 5_000);
    expect(reply.status).toBe(202);
    const [run] = reply.json.runs as Array<{ id: string }>;
    expect(await waitForRun(join(dir, 'state'), 'web', run?.id ?? '')).toMatchObject({ status: 'succeeded' });
  });
});
