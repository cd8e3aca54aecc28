import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RunAbortedError } from '../../src/errors.js';
import { syncCheckout } from '../../src/git/sync.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { gitEnv, syncOptions } from './sync-fixture.js';

/** A TCP server that accepts connections and never says a word, like a stuck Git host. */
async function silentServer(): Promise<{ port: number; connections: Socket[]; server: Server }> {
  const connections: Socket[] = [];
  const server = createServer((socket) => connections.push(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push({ server, connections });
  return { port: (server.address() as AddressInfo).port, connections, server };
}

const servers: Array<{ server: Server; connections: Socket[] }> = [];

afterEach(async () => {
  for (const { server, connections } of servers.splice(0)) {
    // Closing the connections also ends the ssh that git leaves behind when it is killed.
    for (const socket of connections) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('aborting a sync', () => {
  it('kills git fetching from a remote that never answers and rejects promptly with RunAbortedError', async () => {
    const root = await tempDir();
    const { port, connections } = await silentServer();
    const controller = new AbortController();
    const options = syncOptions({
      remote: `ssh://git@127.0.0.1:${port}/repo.git`,
      checkout: join(root, 'checkout'),
      sha: 'ab'.repeat(20),
      env: await gitEnv(root),
      signal: controller.signal,
    });

    const sync = syncCheckout(options);
    await until(() => connections.length > 0);
    const abortedAt = Date.now();
    controller.abort('timeout');

    const error: unknown = await sync.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RunAbortedError);
    expect((error as RunAbortedError).code).toBe('RUN_TIMED_OUT');
    expect(Date.now() - abortedAt).toBeLessThan(2000);
    expect(options.collected.text()).toContain('$ git clone');
  });

  it('reports an abort without a reason as cancelled', async () => {
    const root = await tempDir();
    const { port, connections } = await silentServer();
    const controller = new AbortController();
    const sync = syncCheckout(
      syncOptions({
        remote: `ssh://git@127.0.0.1:${port}/repo.git`,
        checkout: join(root, 'checkout'),
        sha: 'ab'.repeat(20),
        env: await gitEnv(root),
        signal: controller.signal,
      }),
    );
    await until(() => connections.length > 0);
    controller.abort();

    await expect(sync).rejects.toMatchObject({ name: 'RunAbortedError', code: 'RUN_CANCELLED' });
  });

  it('stops a warm checkout\'s fetch, ssh included, when the run is stopped mid-fetch', async () => {
    const root = await tempDir();
    const remote = await createRemote(root);
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    const checkout = join(root, 'checkout');
    const env = await gitEnv(root);
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    const { port, connections } = await silentServer();
    const controller = new AbortController();
    const options = syncOptions({ remote: `ssh://git@127.0.0.1:${port}/repo.git`, checkout, sha, branch: 'main', env, signal: controller.signal });

    const sync = syncCheckout(options);
    await until(() => connections.length > 0);
    const socket = connections[0] as Socket;
    const closed = once(socket, 'close');
    socket.resume(); // reads, so the end ssh sends is seen
    controller.abort('cancelled');

    await expect(sync).rejects.toMatchObject({ name: 'RunAbortedError', code: 'RUN_CANCELLED' });
    // The whole process group went: ssh too, so its connection closed from its end at once
    // (left alone, ssh would give up only after its 30 s ConnectTimeout).
    const timedOut = new Promise<'open'>((resolve) => setTimeout(resolve, 2000, 'open'));
    expect(await Promise.race([closed.then(() => 'closed'), timedOut])).toBe('closed');
    expect(options.collected.text()).toContain('$ git fetch');
    expect(options.collected.text()).not.toContain('$ git checkout');
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
  });

  it('does not start git when the signal is already aborted', async () => {
    const root = await tempDir();
    const remote = await createRemote(root);
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    const checkout = join(root, 'checkout');
    const options = syncOptions({
      remote: remote.bare,
      checkout,
      sha,
      env: await gitEnv(root),
      signal: AbortSignal.abort('cancelled'),
    });

    await expect(syncCheckout(options)).rejects.toBeInstanceOf(RunAbortedError);
    expect(existsSync(join(checkout, '.git'))).toBe(false);
  });
});
