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

/** Waits `ms`, or less when `stop` aborts. */
function pause(ms: number, stop: AbortSignal): Promise<void> {
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

/** Relays verified deliveries to other receivers, re-signed for each, with retries and backoff. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const now = options.now ?? (() => new Date());
  const stopping = new AbortController();
  const active = new Set<Promise<void>>();

  async function relayTo(delivery: RelayedDelivery, { target, runs }: RelayTarget): Promise<void> {
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
      if (stopping.signal.aborted) break;
      const headers = { ...delivery.adapter.relayHeaders(delivery.body, target.secret, delivery.headers, now()), 'user-agent': 'deployhook-forward', ...(target.authorization !== undefined ? { authorization: target.authorization } : {}) };
      const result = await sendOnce(target.url, delivery.body, headers, target.timeoutMs, stopping.signal, target.label);
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
      await pause(waitMs, stopping.signal);
    }
    await record({ status: 'failed', lastError: STOPPED, finishedAt: now().toISOString() });
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
