import { access, constants } from 'node:fs/promises';
import type { Server } from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { checkoutClashes } from './config/checkout-clashes.js';
import { formatDuration, timerDelay } from './config/duration.js';
import type { Logger } from 'pino';
import { loadConfig } from './config/load.js';
import { secretsOfJob } from './config/read-job-secrets.js';
import type { Config, ForwardTarget } from './config/types.js';
import { ConfigError, DeployhookError } from './errors.js';
import { createHookHandler } from './http/hook-handler.js';
import { lazyHandler } from './http/lazy-handler.js';
import { createHttpServer } from './http/server.js';
import { createSourceFilter } from './http/source-filter.js';
import { readTlsOptions } from './http/tls.js';
import { baseEnvironment } from './jobs/command-env.js';
import { createExecutor } from './jobs/execute-run.js';
import { createMetrics, type Metrics } from './metrics/metrics.js';
import { JobIndex } from './jobs/job-index.js';
import { recoverRuns } from './jobs/recover.js';
import { outputPipes, pipeWidener, processLauncher } from './runner/run-command.js';
import { captureProblems } from './log/capture-thread.js';
import { RunQueue } from './jobs/run-queue.js';
import { builtinProviders } from './providers/registry.js';
import { abandonedForwards, createForwarder, type RelayTarget } from './forward/forwarder.js';
import { makeFolderDurably } from './store/folder-sync.js';
import { DeliveryLog } from './store/delivery-log.js';
import { missingInstallFiles } from './install-files.js';
import { RunStore } from './store/run-store.js';
import { lockStateDir } from './store/state-lock.js';
import { createLineLimiter } from './log/line-limit.js';

export interface DaemonOptions {
  config: Config;
  logger: Logger;
  /** The daemon's environment; runs inherit only PATH, HOME, LANG and the proxy variables from it. */
  env: Readonly<Record<string, string | undefined>>;
  /** The clock Standard Webhooks timestamps are checked against. */
  now?: () => Date;
}

export interface Daemon {
  readonly queue: RunQueue;
  /** Creates the state and log folders, recovers runs, then listens. Resolves with the bound address. */
  start(): Promise<AddressInfo>;
  /**
   * Stops accepting deliveries (503), lets running commands finish for up to
   * `shutdown_timeout`, then stops them (recorded as interrupted, repeated after restart).
   */
  stop(): Promise<void>;
  /** Re-reads the config file. An invalid config is refused (and thrown) and the old one kept. */
  reload(): Promise<Config>;
  /**
   * Logs what the line limiters counted and have not logged yet. `stop` does it at its end; an
   * exit that does not wait for `stop` (a second signal) calls it first, so no count is lost.
   */
  flushLogLines(): void;
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
    await makeFolderDurably(path);
    await access(path, constants.W_OK);
  } catch (cause) {
    throw new DeployhookError('FOLDER_NOT_WRITABLE', `Expected ${what} ${path} to be a writable folder, got ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause });
  }
}

/**
 * A fan-out destination's secret, and its sign-in (HTTP Basic from its URL) when it has one: the
 * header's credentials, and the password itself from 8 characters on (a shorter one would
 * mask words all over the logs).
 */
function forwardSecrets(target: ForwardTarget): string[] {
  if (target.authorization === undefined) return [target.secret];
  const credentials = Buffer.from(target.authorization.slice('Basic '.length), 'base64').toString('utf8');
  const password = credentials.slice(credentials.indexOf(':') + 1);
  return [target.secret, target.authorization.slice('Basic '.length), ...(password.length >= 8 ? [password] : [])];
}

/** Every secret the daemon knows: masked in every run log. */
function knownSecrets(config: Config): string[] {
  const jobSecrets = config.jobs.flatMap((job) => [...secretsOfJob(job), ...job.forward.flatMap(forwardSecrets)]);
  const providerSecrets = Object.values(config.forwards).flatMap((targets) => targets.flatMap(forwardSecrets));
  const apiTokens = config.api ? [config.api.token, ...(config.api.uiToken ? [config.api.uiToken] : [])] : [];
  return [...jobSecrets, ...providerSecrets, ...apiTokens];
}

const configSecrets = new WeakMap<Config, readonly string[]>();

/** knownSecrets, made once per config (a reload makes a new one): every run asks for them. */
function secretsOfConfig(config: Config): readonly string[] {
  let secrets = configSecrets.get(config);
  // Frozen: a masker is made once per list (see createMasker), which must not change under it.
  if (secrets === undefined) configSecrets.set(config, (secrets = Object.freeze([...new Set(knownSecrets(config))])));
  return secrets;
}

/** How often remembered deliveries older than `dedup_window` are forgotten. */
const PRUNE_DELIVERIES_MS = 60 * 60 * 1000;
/** How soon after a run ends without starting (superseded, cancelled) its job's old runs are removed. */
const PRUNE_UNSTARTED_MS = 100;
/**
 * Log lines per second for deliveries that deploy nothing (rejected, ignored) or only join runs
 * already queued (a flood of one commit's pushes); past that, they are counted and summed up in
 * one line a second. A flood of unsigned requests, of pushes to other branches or of one
 * commit then cannot drown the log, nor push it past journald's own rate limit (by default at
 * least 10,000 lines in 30 s, more with free disk space), which would drop the lines of runs too.
 */
const QUIET_DELIVERY_LINES_PER_SECOND = 100;
/**
 * Log lines per second for runs superseded before they started: a flood of different commits
 * to one job supersedes a run with each push, a line each on top of the push's own `delivery`
 * line. Past that, they are counted and summed up in one line a second; each such run's record
 * keeps its status and the run that replaced it, and `deployhook_runs_total` counts it.
 */
const SUPERSEDED_RUN_LINES_PER_SECOND = 100;

/** The composition root: config, logger, stores, queue and server, wired together. */
export function createDaemon(options: DaemonOptions): Daemon {
  const { logger } = options;
  let config = options.config;
  let index = new JobIndex(config.jobs);
  let draining = false;
  let pruneTimer: NodeJS.Timeout | undefined;

  let sources = createSourceFilter(config.allowFrom, config.trustProxy);
  const store = new RunStore(config.stateDir, config.logDir, {
    onKept: (error) => logger.error({ err: error }, 'run files could not be made durable (fsync failed): their journal is kept, and a restart writes them again; check the disk, then restart'),
  });
  const deliveries = new DeliveryLog({ dir: join(config.stateDir, 'deliveries'), legacyJournalDir: join(config.stateDir, 'journal', 'deliveries'), windowMs: config.dedupWindowMs });
  const execute = createExecutor({
    store,
    logger: logger.child({ area: 'runs' }),
    baseEnv: baseEnvironment(options.env),
    knownSecrets: () => secretsOfConfig(config),
    onFinished: (run) => metrics?.runFinished(run),
    maxLogBytes: () => config.maxLogBytes,
    keepRuns: () => config.keepRuns,
  });
  const forwarder = createForwarder({ logger: logger.child({ area: 'forward' }), save: (run) => store.saveIfKept(run) });
  // Runs that end without starting are pruned soon too, not only when a run finishes: in a flood
  // of pushes the superseded runs beyond keep_runs then go before their files are put in place
  // (about a second after they were recorded), so those files are never written at all.
  const pruneSoon = new Map<string, NodeJS.Timeout>();
  const schedulePrune = (job: string): void => {
    if (draining || pruneSoon.has(job)) return;
    const timer = setTimeout(() => {
      pruneSoon.delete(job);
      store.prune(job, config.keepRuns).catch((error: unknown) => logger.error({ err: error, job }, 'could not remove old runs'));
    }, PRUNE_UNSTARTED_MS);
    timer.unref();
    pruneSoon.set(job, timer);
  };
  const queueLogger = logger.child({ area: 'queue' });
  const supersededLines = createLineLimiter({
    perSecond: SUPERSEDED_RUN_LINES_PER_SECOND,
    report: (leftOut) => queueLogger.warn({ leftOut }, `more than ${SUPERSEDED_RUN_LINES_PER_SECOND} runs superseded in one second: the rest of that second are counted in leftOut instead of logged one by one`),
  });
  const queue = new RunQueue({
    store,
    execute,
    job: (name) => index.get(name),
    maxParallel: config.maxParallel,
    logger: queueLogger,
    supersededLines,
    paused: true,
    onFinished: (run) => {
      metrics?.runFinished(run);
      schedulePrune(run.job);
    },
  });
  const hooksLogger = logger.child({ area: 'hooks' });
  const quietLines = createLineLimiter({
    perSecond: QUIET_DELIVERY_LINES_PER_SECOND,
    report: (leftOut) => hooksLogger.warn({ leftOut }, `more than ${QUIET_DELIVERY_LINES_PER_SECOND} deliveries in one second that deploy nothing or only join a queued run: the rest of that second are counted in leftOut instead of logged one by one`),
  });
  const hooks = createHookHandler({
    providers: builtinProviders({ now: options.now ?? (() => new Date()), toleranceMs: () => config.timestampToleranceMs }),
    jobs: () => index,
    queue,
    deliveries,
    logger: hooksLogger,
    quietLines,
    maxBodyBytes: () => config.maxBodyBytes,
    draining: () => draining,
    sources: () => sources,
    skipMarker: () => config.skipMarker,
    env: options.env,
    onDelivery: (provider, outcome) => metrics?.delivery(provider, outcome),
    relaysUnqueued: (provider) => (config.forwards[provider]?.length ?? 0) > 0,
    relay: (delivery, runs, joined) => {
      // A run a delivery joined does not list its relays: every copy of a flood would add its own.
      const listing = runs.filter((run) => joined?.has(run) !== true);
      const targets: RelayTarget[] = (config.forwards[delivery.adapter.name] ?? []).map((target) => ({ target, runs: listing }));
      for (const run of runs) targets.push(...(index.get(run.job)?.forward ?? []).map((target) => ({ target, runs: listing.includes(run) ? [run] : [] })));
      if (targets.length > 0) forwarder.relay(delivery, targets);
    },
  });
  let server: Server | undefined;
  // Made at start, from the runs on disk; nothing runs or arrives before that.
  let metrics: Metrics | undefined;

  let releaseStateDir: (() => Promise<void>) | undefined;
  /** start() once state_dir is ours: recovery, then the listener, then the queue. */
  async function startLocked(): Promise<AddressInfo> {
    await ensureWritableFolder(config.logDir, 'log_dir');
    const [missing] = await missingInstallFiles(config);
    if (missing !== undefined) throw new DeployhookError('INSTALL_INCOMPLETE', missing);
    const remembered = await deliveries.open();
    logger.info({ deliveries: remembered }, 'loaded remembered deliveries');
    pruneTimer = setInterval(() => {
      deliveries.prune().catch((error: unknown) => logger.error({ err: error }, 'could not forget old deliveries'));
    }, PRUNE_DELIVERIES_MS);
    pruneTimer.unref();
    const loaded = await store.loadAll();
    for (const run of abandonedForwards(loaded.records)) {
      // A full or read-only disk must not keep the daemon from starting: the record says so next time.
      await store.save(run).catch((error: unknown) => logger.error({ err: error, run: run.id }, 'could not record the relays a stop cut short'));
    }
    const runMetrics = createMetrics({ queueDepth: () => queue.depth, initialRuns: loaded.records });
    metrics = runMetrics;
    await recoverRuns({ loaded, store, queue, job: (name) => index.get(name), logger: logger.child({ area: 'recovery' }), killGraceMs: 10_000, onFinished: (run) => runMetrics.runFinished(run) });

    server = createHttpServer({
      hooks,
      // express, the API and the pages load with the first request for them.
      api: lazyHandler(async () => (await import('./http/api-app.js')).createApiApp({ logger: logger.child({ area: 'api' }), config: () => config, jobs: () => index, queue, store, env: options.env, metrics: runMetrics }), logger),
      logger,
      ...(config.tls !== undefined ? { tls: await readTlsOptions(config.tls) } : {}),
      maxConnections: config.maxConnections,
      headersTimeoutMs: config.headersTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
    });
    const listener = server;
    const { host, port } = config.listen;
    const address = await new Promise<AddressInfo>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => reject(new ListenError(`${host}:${port}`, error));
      listener.once('error', onError);
      listener.listen(port, host, () => {
        listener.off('error', onError);
        resolve(listener.address() as AddressInfo);
      });
    });
    outputPipes.onUnavailable = (reason) => logger.warn({ reason }, "runs' output goes through socket pairs instead of pipes: a command cannot open /dev/stdout or /dev/stderr");
    processLauncher.onProblem = (reason) => logger.warn({ reason }, "the helper that starts runs' processes could not be used, or ended; where it cannot be used the daemon starts them itself");
    pipeWidener.onProblem = (reason) => logger.warn({ reason }, "a chatty command's output pipe stays at 64 KiB, so the command waits for the log more often");
    captureProblems.onProblem = (kind, reason) =>
      logger.warn(
        { reason },
        kind === 'start' ? "the thread that captures a chatty command's output could not start: the event loop reads it instead (slower)" : "the thread that captured a command's output failed: that run's log is incomplete, and the run is marked as failed",
      );
    // Runs start only once the daemon listens: a start that fails (the port is taken, the
    // TLS key unreadable) leaves no deploy cut short by its exit.
    queue.start();
    logger.info({ host: address.address, port: address.port, tls: config.tls !== undefined, mutualTls: config.tls?.clientCa !== undefined, jobs: config.jobs.length, config: config.file }, 'listening');
    return address;
  }

  let reloads: Promise<void> = Promise.resolve();

  /** Loads the config file again and puts it in place of the running one (see reload). */
  async function reloadNow(): Promise<Config> {
    const refuse = (error: ConfigError): never => {
      logger.error({ issues: error.issues.map((issue) => `${issue.path}: ${issue.message}`) }, 'reload refused: the new config is invalid; keeping the old one');
      throw error;
    };
    let next: Config;
    try {
      next = await loadConfig(config.file, options.env);
    } catch (error) {
      if (error instanceof ConfigError) refuse(error);
      throw error;
    }
    // A delivery replayed within timestamp_tolerance must still be remembered as a duplicate:
    // the running dedup window (which changes only on restart) bounds a new tolerance.
    if (next.timestampToleranceMs * 2 > config.dedupWindowMs) {
      refuse(new ConfigError(config.file, [{ path: 'timestamp_tolerance', message: `expected at most half the running dedup_window (${formatDuration(config.dedupWindowMs)}), which changes only on restart; got ${formatDuration(next.timestampToleranceMs)}` }]));
    }
    // A job's checkout by default is under state_dir, which changes only on restart: under the running one.
    if (next.stateDir !== config.stateDir) {
      const moved = join(next.stateDir, 'checkouts');
      next = { ...next, jobs: next.jobs.map((job) => (job.checkout === join(moved, job.name) ? { ...job, checkout: join(config.stateDir, 'checkouts', job.name) } : job)) };
    }
    // Checked against the folders in use, which the new config's own check did not see.
    const clashes = next.stateDir !== config.stateDir || next.logDir !== config.logDir ? checkoutClashes(next.jobs.filter((job) => job.remote !== undefined), { state: config.stateDir, log: config.logDir }) : [];
    if (clashes.length > 0) refuse(new ConfigError(config.file, clashes));
    // The folders and the address are in use; the dedup log was opened with its window.
    const restartOnly = { listen: 'listen', stateDir: 'state_dir', logDir: 'log_dir', dedupWindowMs: 'dedup_window' } as const;
    for (const [key, name] of Object.entries(restartOnly) as Array<[keyof typeof restartOnly, string]>) {
      if (JSON.stringify(next[key]) !== JSON.stringify(config[key])) logger.warn({ key: name }, 'this setting changes only on restart; keeping the running value');
    }
    // Certificate and key are read again (renewed ones take effect). Whether TLS is on, and
    // whether clients must present certificates (client_ca), is fixed when the listener starts.
    if ((next.tls === undefined) !== (config.tls === undefined) || next.tls?.clientCa !== config.tls?.clientCa) {
      logger.warn({ key: 'tls' }, 'turning TLS or tls.client_ca on or off changes only on restart; keeping the running value');
    }
    const tls = config.tls === undefined ? undefined : { ...config.tls, ...(next.tls ? { cert: next.tls.cert, key: next.tls.key } : {}) };
    if (tls && server instanceof HttpsServer) server.setSecureContext(await readTlsOptions(tls));
    const removed = config.jobs.filter((job) => !next.jobs.some((candidate) => candidate.name === job.name));
    config = { ...next, listen: config.listen, stateDir: config.stateDir, logDir: config.logDir, dedupWindowMs: config.dedupWindowMs };
    delete config.tls;
    if (tls) config.tls = tls;
    sources = createSourceFilter(config.allowFrom, config.trustProxy);
    if (server) {
      server.maxConnections = config.maxConnections;
      // node reads these at each check of the open connections (every second).
      server.headersTimeout = config.headersTimeoutMs;
      server.requestTimeout = config.requestTimeoutMs;
    }
    index = new JobIndex(config.jobs);
    queue.maxParallel = config.maxParallel;
    for (const job of removed) queue.cancelPending(job.name, `job ${job.name} was removed from the config by a reload`);
    for (const warning of config.warnings) logger.warn({ warning }, 'config warning');
    logger.info({ jobs: config.jobs.length, removed: removed.map((job) => job.name) }, 'config reloaded');
    return config;
  }

  function flushLogLines(): void {
    quietLines.flush();
    supersededLines.flush();
  }

  return {
    queue,
    flushLogLines,
    async start() {
      await ensureWritableFolder(config.stateDir, 'state_dir');
      releaseStateDir = await lockStateDir(config.stateDir, { onProblem: (message) => logger.warn({ stateDir: config.stateDir }, message) });
      try {
        return await startLocked();
      } catch (error) {
        // The reason the start failed is what the operator needs; a lock left behind is taken over next time.
        await releaseStateDir().catch((releaseError: unknown) => logger.warn({ err: releaseError }, 'could not remove the state_dir lock'));
        releaseStateDir = undefined;
        throw error;
      }
    },

    async stop() {
      try {
        draining = true;
        clearInterval(pruneTimer);
        for (const timer of pruneSoon.values()) clearTimeout(timer);
        pruneSoon.clear();
        queue.stopStarting();
        const graceMs = config.shutdownTimeoutMs;
        let timer: NodeJS.Timeout | undefined;
        const gaveUp = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timerDelay(graceMs));
        });
        if ((await Promise.race([queue.whenIdle(), gaveUp])) === 'timeout') {
          const runs = queue.interruptRunning();
          if (runs.length > 0) logger.warn({ graceMs, runs }, 'runs still in progress after shutdown_timeout: stopping them; they run again after restart');
          else logger.warn({ graceMs }, 'finished runs still saving after shutdown_timeout: stopping what is left of them');
          await queue.whenIdle();
        }
        clearTimeout(timer);
        await forwarder.stop();
        // What the journal holds goes in place now, so the next start has nothing to replay.
        await Promise.all([store.close(), deliveries.close()]).catch((error: unknown) => logger.warn({ err: error }, 'could not empty the journal at shutdown; the next start replays it'));
        const listener = server;
        if (listener) {
          const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
          listener.closeAllConnections();
          await closed;
        }
      } finally {
        // What the line limiters counted and did not log yet, however the shutdown went.
        flushLogLines();
      }
      await releaseStateDir?.().catch((error: unknown) => logger.warn({ err: error }, 'could not remove the state_dir lock; the next start takes it over'));
      releaseStateDir = undefined;
    },

    reload() {
      // One at a time, in the order asked: each reads the file when its turn comes, so the last
      // one asked installs the newest file, never an older reload that happened to finish last.
      const turn = reloads.then(reloadNow);
      reloads = turn.then(
        () => undefined,
        () => undefined,
      );
      return turn;
    },
  };
}
