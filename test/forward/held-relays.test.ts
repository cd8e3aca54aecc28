import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createForwarder, MAX_HELD_BYTES, MAX_HELD_RELAYS, type Forwarder } from '../../src/forward/forwarder.js';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { builtinProviders } from '../../src/providers/registry.js';
import { until } from '../helpers/wait.js';

let forwarder: Forwarder | undefined;
let close: (() => Promise<void>) | undefined;

afterEach(async () => {
  await forwarder?.stop();
  await close?.();
  forwarder = undefined;
  close = undefined;
});

/** A destination that takes each connection and never answers: every relay to it stays under way. */
async function silentDestination(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  close = () => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/github`;
}

function relayMany(url: string, bodies: readonly Buffer[]): RunRecord[] {
  const adapter = builtinProviders().get('github');
  if (!adapter) throw new Error('no github adapter');
  forwarder = createForwarder({ logger: pino({ level: 'silent' }), save: async () => {} });
  const target = { url, label: url, secret: 'destination-secret-0123456789abc', attempts: 6, backoffMs: 60_000, timeoutMs: 600_000 };
  return bodies.map((body, index) => {
    const run = { id: `run-${index}` } as RunRecord;
    forwarder?.relay({ adapter, body, headers: { 'x-github-event': 'push' }, deliveryId: `d-${index}` }, [{ target, runs: [run] }]);
    return run;
  });
}

describe('relays held for a destination that does not answer', () => {
  it(`are at most ${MAX_HELD_RELAYS}: the oldest are given up, with the reason`, async () => {
    const runs = relayMany(await silentDestination(), Array.from({ length: MAX_HELD_RELAYS + 2 }, () => Buffer.from('{"ref":"refs/heads/main"}')));
    await until('the two oldest to be given up', () => runs.slice(0, 2).every((run) => run.forwards?.[0]?.status === 'failed'));
    expect(runs[0]?.forwards?.[0]?.lastError).toMatch(/^more deliveries were waiting for this destination than deployhook holds \(1000, or 64 MiB\)/);
    expect(runs.slice(2).every((run) => run.forwards?.[0]?.status === 'pending')).toBe(true);
  });

  it(`hold at most ${MAX_HELD_BYTES / 1024 / 1024} MiB of bodies, but always the newest`, async () => {
    const large = Buffer.alloc(MAX_HELD_BYTES / 2 - 1024, 0x20);
    const runs = relayMany(await silentDestination(), [large, large, large, Buffer.alloc(MAX_HELD_BYTES + 1, 0x20)]);
    await until('all but the newest to be given up', () => runs.slice(0, 3).every((run) => run.forwards?.[0]?.status === 'failed'));
    expect(runs[3]?.forwards?.[0]?.status).toBe('pending');
  });

  it('are given up at once when the daemon stops during an attempt, not after the wait before the next', async () => {
    const url = await silentDestination();
    const [run] = relayMany(url, [Buffer.from('{}')]);
    await until('the relay to be under way', () => run?.forwards?.[0] !== undefined);
    await forwarder?.stop();
    expect(run?.forwards?.[0]).toMatchObject({ status: 'failed', attempts: 1, lastError: 'deployhook stopped before the destination accepted the delivery; it is not retried after a restart' });
  });
});
