import { access, constants, mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from './config/types.js';
import { DeployhookError } from './errors.js';
import { createApiApp } from './http/api-app.js';
import { createHookHandler } from './http/hook-handler.js';
import { createHttpServer } from './http/server.js';
import { baseEnvironment } from './jobs/command-env.js';
import { createExecutor } from './jobs/execute-run.js';
import { JobIndex } from './jobs/job-index.js';
import { RunQueue } from './jobs/run-queue.js';
import { builtinProviders } from './providers/registry.js';
import { RunStore } from './store/run-store.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  /** The daemon's environment; runs inherit only PATH, HOME and LANG from it. */
  env: Readonly<Record<string, string | undefined>>;
}

export interface Daemon {
  readonly queue: RunQueue;
  /** Creates the state and log folders, then listens. Resolves with the bound address. */
  start(): Promise<AddressInfo>;
  /** Stops accepting deliveries, waits up to `graceMs` for running deploys, then closes. */
  stop(graceMs?: number): Promise<void>;
}

/** The listen address is taken or not allowed: say which, and what to do. */
export class ListenError extends DeployhookError {
  constructor(address: string, cause: NodeJS.ErrnoException) {
    const hint =
      cause.code === 'EADDRINUSE'
        ? `${address} is already in use. Is another deployhook (or something else) listening there? Stop it or change \`listen\` in the config.`
        : cause.code === 'EACCES'
          ? `not allowed to listen on ${address}. Ports below 1024 need privileges; use a higher port behind a reverse proxy.`
          : `could not listen on ${address}: ${cause.message}`;
    super('LISTEN_FAILED', hint, { cause });
  }
}

async function ensureWritableFolder(path: string, what: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
    await access(path, constants.W_OK);
  } catch (cause) {
    throw new DeployhookError('FOLDER_NOT_WRITABLE', `Expected ${what} ${path} to be a writable folder, got ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause });
  }
}

/** The composition root: config, logger, store, queue and server, wired together. */
export function createDaemon(options: DaemonOptions): Daemon {
  const { config, logger } = options;
  const store = new RunStore(config.stateDir);
  const index = new JobIndex(config.jobs);
  const execute = createExecutor({ store, logger: logger.child({ area: 'runs' }), baseEnv: baseEnvironment(options.env) });
  const queue = new RunQueue({ store, execute, maxParallel: config.maxParallel, logDir: config.logDir, logger: logger.child({ area: 'queue' }) });
  const hooks = createHookHandler({ providers: builtinProviders(), jobs: () => index, queue, logger: logger.child({ area: 'hooks' }), maxBodyBytes: config.maxBodyBytes });
  const server: Server = createHttpServer({ hooks, api: createApiApp({ logger: logger.child({ area: 'api' }) }), logger });

  return {
    queue,
    async start() {
      await ensureWritableFolder(config.stateDir, 'state_dir');
      await ensureWritableFolder(config.logDir, 'log_dir');
      const { host, port } = config.listen;
      const address = await new Promise<AddressInfo>((resolve, reject) => {
        const onError = (error: NodeJS.ErrnoException) => reject(new ListenError(`${host}:${port}`, error));
        server.once('error', onError);
        server.listen(port, host, () => {
          server.off('error', onError);
          resolve(server.address() as AddressInfo);
        });
      });
      logger.info({ host: address.address, port: address.port, jobs: config.jobs.length, config: config.file }, 'listening');
      return address;
    },
    async stop(graceMs = 60_000) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), graceMs);
      });
      const result = await Promise.race([queue.whenIdle(), gaveUp]);
      clearTimeout(timer);
      if (result === 'timeout') logger.warn({ graceMs }, 'runs still in progress at shutdown');
      server.closeAllConnections();
      await closed;
    },
  };
}
