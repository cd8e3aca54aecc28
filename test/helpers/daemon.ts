import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { createDaemon, type Daemon } from '../../src/app.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { writeConfigFile } from './config-file.js';

export interface TestDaemon {
  url: string;
  config: Config;
  daemon: Daemon;
  /** Every line the daemon logged, raw. */
  logLines: string[];
  post(provider: string, body: string | Buffer, headers: Record<string, string>): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }>;
  stop(): Promise<void>;
}

/**
 * Writes `settings` as a YAML config in `dir`, loads it the way `deployhook serve` does,
 * and starts the daemon on 127.0.0.1, port 0.
 */
export async function startDaemon(dir: string, settings: Record<string, unknown>, env: Record<string, string> = {}): Promise<TestDaemon> {
  const file = join(dir, 'deployhook.yml');
  await writeConfigFile(file, settings);
  const daemonEnv = { ...process.env, ...env };
  const config = await loadConfig(file, daemonEnv);
  const logLines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  const logger = pino({ level: 'debug' }, destination);
  const daemon = createDaemon({ config, logger, env: daemonEnv });
  const address = await daemon.start();
  const url = `http://127.0.0.1:${address.port}`;
  let stopped: Promise<void> | undefined;
  return {
    url,
    config,
    daemon,
    logLines,
    async post(provider, body, headers) {
      const response = await fetch(`${url}/hooks/${provider}`, { method: 'POST', body, headers });
      const text = await response.text();
      let json: Record<string, unknown>;
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        json = { text };
      }
      return { status: response.status, json, headers: response.headers };
    },
    // Once: a test that stops the daemon itself may also stop it in a `finally`.
    stop: () => (stopped ??= daemon.stop()),
  };
}

/** The daemon's log so far, a parsed object per line. */
export function parsedLines(daemon: TestDaemon): Array<Record<string, unknown>> {
  return daemon.logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * What the line limiters' `warn` lines counted instead of logging: of one key of their
 * `leftOut` (a delivery's decision, `joined`, `superseded`), or of all.
 */
export function leftOutCount(lines: ReadonlyArray<Record<string, unknown>>, key?: string): number {
  let sum = 0;
  for (const line of lines) {
    const counts = line.leftOut as Record<string, number> | undefined;
    if (counts === undefined) continue;
    sum += key === undefined ? Object.values(counts).reduce((a, b) => a + b, 0) : (counts[key] ?? 0);
  }
  return sum;
}

/** Calls `send` `count` times, `batch` at a time (each batch at once): a flood of requests. */
export async function inBatches(count: number, send: (index: number) => Promise<number>, batch = 30): Promise<number[]> {
  const results: number[] = [];
  for (let start = 0; start < count; start += batch) {
    results.push(...(await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, offset) => send(start + offset)))));
  }
  return results;
}
