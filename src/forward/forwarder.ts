import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import type { ForwardTarget } from '../config/types.js';
import type { ForwardRecord, RunRecord } from '../jobs/run-record.js';
import type { ProviderAdapter } from '../providers/types.js';
import { sendOnce } from './send-once.js';

/** A verified delivery, ready to be relayed. */
export interface RelayedDelivery {
  adapter: ProviderAdapter;
  /** The JSON payload as received (for a form-encoded delivery, its `payload` field). */
  body: Buffer;
  headers: IncomingHttpHeaders;
  deliveryId: string;
}

/** A destination and the runs whose records show how relaying to it went. */
export interface RelayTarget {
  target: ForwardTarget;
  runs: readonly RunRecord[];
}

export interface ForwarderOptions {
  logger: Logger;
  /** Writes a run record whose fan-out state changed. */
  save: (run: RunRecord) => Promise<void>;
  /** Told how each relay ended (metrics). */
  onFinished?: (outcome: 'delivered' | 'failed') => void;
  now?: () => Date;
}

export interface Forwarder {
  /** Starts relaying in the background; never waits for a destination and never throws. */
  relay(delivery: RelayedDelivery, targets: readonly RelayTarget[]): void;
  /** Stops retrying; relays not yet delivered are recorded as failed. */
  stop(): Promise<void>;
}

/** Waits `ms`, or less when `stop` aborts (not at all when it has). */
function pause(ms: number, stop: AbortSignal): Promise<void> {
  if (stop.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      stop.removeEventListener('abort', done);
      resolve();
    }
    stop.addEventListener('abort', done, { once: true });
  });
}

const MAX_BACKOFF_MS = 5 * 60_000;
const STOPPED = 'deployhook stopped before the destination accepted the delivery; it is not retried after a restart';
/**
 * What one destination may hold in memory: the relays not yet delivered (each keeps its
 * delivery's body until it is), at most this many and this many bytes of bodies. A destination
 * that is down while pushes keep coming would otherwise grow the daemon without end; past
 * either limit its oldest relays are given up, the newest kept.
 */
export const MAX_HELD_RELAYS = 1_000;
export const MAX_HELD_BYTES = 64 * 1024 * 1024;
const DROPPED = `more deliveries were waiting for this destination than deployhook holds (${MAX_HELD_RELAYS}, or ${MAX_HELD_BYTES / 1024 / 1024} MiB): this older one was given up`;

/** A relay under way: aborted when the daemon stops, or when newer ones push it out. */
interface Held {
  controller: AbortController;
  bytes: number;
}

/** Relays verified deliveries to other receivers, re-signed for each, with retries and backoff. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const now = options.now ?? (() => new Date());
  const stopping = new AbortController();
  const active = new Set<Promise<void>>();
  /** Per destination URL, its relays under way, oldest first, and the bytes they hold. */
  const held = new Map<string, { relays: Held[]; bytes: number }>();

  /** Holds a new relay to `url`, giving up the oldest ones past the limits. */
  function hold(url: string, bytes: number): Held {
    const destination = held.get(url) ?? { relays: [], bytes: 0 };
    held.set(url, destination);
    const relay = { controller: new AbortController(), bytes };
    if (stopping.signal.aborted) relay.controller.abort('stopped');
    destination.relays.push(relay);
    destination.bytes += bytes;
    while (destination.relays.length > 1 && (destination.relays.length > MAX_HELD_RELAYS || destination.bytes > MAX_HELD_BYTES)) {
      const oldest = destination.relays.shift();
      if (oldest === undefined) break;
      destination.bytes -= oldest.bytes;
      oldest.controller.abort('dropped');
    }
    return relay;
  }

  function release(url: string, relay: Held): void {
    const destination = held.get(url);
    const index = destination?.relays.indexOf(relay) ?? -1;
    if (destination === undefined || index === -1) return;
    destination.relays.splice(index, 1);
    destination.bytes -= relay.bytes;
    if (destination.relays.length === 0) held.delete(url);
  }

  async function relayTo(delivery: RelayedDelivery, { target, runs }: RelayTarget): Promise<void> {
    const relay = hold(target.url, delivery.body.length);
    try {
      await attempts(delivery, { target, runs }, relay.controller.signal);
    } finally {
      release(target.url, relay);
    }
  }

  async function attempts(delivery: RelayedDelivery, { target, runs }: RelayTarget, cut: AbortSignal): Promise<void> {
    const logger = options.logger.child({ delivery: delivery.deliveryId, destination: target.label });
    const entries = runs.map((run) => {
      const entry: ForwardRecord = { url: target.label, status: 'pending', attempts: 0 };
      (run.forwards ??= []).push(entry);
      return { run, entry };
    });
    const record = async (change: Partial<ForwardRecord>) => {
      for (const { run, entry } of entries) {
        Object.assign(entry, change);
        await options.save(run).catch((error: unknown) => logger.error({ err: error, run: run.id }, 'could not save the run record'));
      }
    };
    for (let attempt = 1; attempt <= target.attempts; attempt += 1) {
      if (cut.aborted) break;
      const headers = { ...delivery.adapter.relayHeaders(delivery.body, target.secret, delivery.headers, now()), 'user-agent': 'deployhook-forward', ...(target.authorization !== undefined ? { authorization: target.authorization } : {}) };
      const result = await sendOnce(target.url, delivery.body, headers, target.timeoutMs, cut, target.label);
      // Cut off during the attempt (a stop, newer relays): recorded as such below, not as a network error.
      if (!result.ok && cut.aborted) {
        await record({ attempts: attempt });
        break;
      }
      if (result.ok) {
        await record({ status: 'delivered', attempts: attempt, lastStatus: result.status, finishedAt: now().toISOString() });
        logger.info({ attempt, status: result.status }, 'delivery forwarded');
        options.onFinished?.('delivered');
        return;
      }
      const last = { attempts: attempt, lastError: result.error, ...(result.status !== undefined ? { lastStatus: result.status } : {}) };
      if (!result.retry || attempt === target.attempts) {
        await record({ ...last, status: 'failed', finishedAt: now().toISOString() });
        logger.warn({ attempt, reason: result.error }, 'forwarding failed; giving up');
        options.onFinished?.('failed');
        return;
      }
      const waitMs = Math.min(Math.max(target.backoffMs * 2 ** (attempt - 1), result.retryAfterMs ?? 0), MAX_BACKOFF_MS);
      await record(last);
      logger.info({ attempt, reason: result.error, retryInMs: waitMs }, 'forwarding failed; retrying');
      await pause(waitMs, cut);
    }
    const dropped = cut.reason === 'dropped';
    if (dropped) logger.warn({ held: MAX_HELD_RELAYS }, 'forwarding given up: newer deliveries for this destination pushed it out');
    await record({ status: 'failed', lastError: dropped ? DROPPED : STOPPED, finishedAt: now().toISOString() });
    options.onFinished?.('failed');
  }

  return {
    relay(delivery, targets) {
      // The same destination with the same secret (and sign-in) gets the delivery once, whichever jobs name it.
      const merged = new Map<string, { target: ForwardTarget; runs: RunRecord[] }>();
      for (const { target, runs } of targets) {
        const key = `${target.url}\u0000${target.secret}\u0000${target.authorization ?? ''}`;
        const entry = merged.get(key) ?? { target, runs: [] };
        entry.runs.push(...runs.filter((run) => !entry.runs.includes(run)));
        merged.set(key, entry);
      }
      for (const entry of merged.values()) {
        const running = relayTo(delivery, entry).catch((error: unknown) => options.logger.error({ err: error }, 'forwarding failed unexpectedly'));
        active.add(running);
        void running.finally(() => active.delete(running));
      }
    },

    async stop() {
      stopping.abort();
      for (const destination of held.values()) for (const relay of destination.relays) relay.controller.abort('stopped');
      await Promise.all(active);
    },
  };
}

/** At start: relays a previous daemon left unfinished are recorded as failed, with the reason. */
export function abandonedForwards(records: readonly RunRecord[]): RunRecord[] {
  const changed: RunRecord[] = [];
  for (const run of records) {
    const pending = run.forwards?.filter((entry) => entry.status === 'pending') ?? [];
    for (const entry of pending) Object.assign(entry, { status: 'failed', lastError: STOPPED });
    if (pending.length > 0) changed.push(run);
  }
  return changed;
}
