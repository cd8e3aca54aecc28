#!/usr/bin/env node
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import packageJson from '../package.json' with { type: 'json' };
import { createDaemon } from './app.js';
import type { ApiClient } from './client/api-client.js';
import { loadConfig } from './config/load.js';
import { parseListenAddress } from './config/listen-address.js';
import type { Config } from './config/types.js';
import { ConfigError, DeployhookError } from './errors.js';
import { createLogger } from './log/logger.js';

const DEFAULT_CONFIG = process.env.DEPLOYHOOK_CONFIG ?? '/etc/deployhook/deployhook.yml';

// The client commands' modules are loaded by the command that needs them, so `serve` starts without them.
const commands = () => import('./client/commands.js');

/** Prints an error the user can act on, one problem per line, and exits non-zero. */
function fail(error: unknown): never {
  if (error instanceof ConfigError) {
    console.error(`deployhook: invalid config ${error.file}`);
    for (const issue of error.issues) console.error(`  ${issue.path ? `${issue.path}: ` : ''}${issue.message}`);
  } else if (error instanceof DeployhookError) {
    console.error(`deployhook: ${error.message}`);
  } else {
    console.error(`deployhook: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
  process.exit(1);
}

const SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

function listenOption(value: string): string {
  if (!parseListenAddress(value)) throw new InvalidArgumentError('expected "host:port", such as 127.0.0.1:9000');
  return value;
}

async function serve(options: { config: string; listen?: string }): Promise<void> {
  // Until the handlers below are in place, a signal is remembered: node's own way with SIGHUP
  // (a reload right after `systemctl start`) and SIGTERM is to exit, which systemd takes for a
  // clean stop and does not restart.
  const early: NodeJS.Signals[] = [];
  const remember = (signal: NodeJS.Signals) => {
    // A second stop while the config is still being read (a hung secret file): out at once.
    if (signal !== 'SIGHUP' && early.some((seen) => seen !== 'SIGHUP')) process.exit(1);
    early.push(signal);
  };
  for (const signal of SIGNALS) process.on(signal, remember);
  let config: Config = await loadConfig(options.config, process.env).catch(fail);
  if (options.listen !== undefined) config = { ...config, listen: parseListenAddress(options.listen) ?? config.listen };
  const logger = createLogger({ level: process.env.DEPLOYHOOK_LOG_LEVEL ?? 'info' });
  for (const warning of config.warnings) logger.warn({ warning }, 'config warning');
  const daemon = createDaemon({ config, logger, env: process.env });

  // Signals are handled from the first moment: one that arrives while recovery is still
  // running takes effect once the daemon has started, instead of killing it.
  let started = false;
  let stopping = false;
  let reloadWaiting = false;
  const exit = (code: number) => {
    logger.flush();
    process.exit(code);
  };
  const stop = () => {
    daemon.stop().then(
      () => {
        logger.info('stopped');
        exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        exit(1);
      },
    );
  };
  const reload = () => {
    logger.info('reloading the config');
    daemon.reload().catch((error: unknown) => {
      if (!(error instanceof ConfigError)) logger.error({ err: error }, 'reload failed');
    });
  };
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      try {
        // What the line limiters counted this second goes out first: `stop` would have logged it at its end.
        daemon.flushLogLines();
      } finally {
        logger.warn({ signal }, 'a second signal: exiting now; running commands are killed (SIGKILL, no grace) and their runs repeated after restart');
        exit(1);
      }
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    if (started) stop();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  // systemctl reload: re-read the config; an invalid one is logged and the old one kept.
  process.on('SIGHUP', () => {
    if (started) reload();
    else reloadWaiting = true;
  });
  for (const signal of SIGNALS) process.off(signal, remember);
  for (const signal of early) process.emit(signal, signal);

  await daemon.start().catch(fail);
  started = true;
  if (stopping) stop();
  else if (reloadWaiting) reload();
}

async function check(options: { config: string }): Promise<void> {
  const config = await loadConfig(options.config, process.env).catch(fail);
  const { missingInstallFiles } = await import('./install-files.js');
  const [missing] = await missingInstallFiles(config);
  if (missing !== undefined) fail(new DeployhookError('INSTALL_INCOMPLETE', missing));
  for (const warning of config.warnings) console.log(`warning: ${warning}`);
  console.log(`${config.file}: valid, ${config.jobs.length} job${config.jobs.length === 1 ? '' : 's'}`);
}

async function send(jobName: string, options: { config: string; ref?: string; sha?: string; data?: string; url?: string }): Promise<void> {
  const config = await loadConfig(options.config, process.env).catch(fail);
  const { sendPush } = await import('./client/send-push.js');
  const result = await sendPush({
    config,
    jobName,
    env: process.env,
    ...(options.ref !== undefined ? { ref: options.ref } : {}),
    ...(options.sha !== undefined ? { sha: options.sha } : {}),
    ...(options.data !== undefined ? { data: options.data } : {}),
    ...(options.url !== undefined ? { url: options.url } : {}),
  }).catch(fail);
  const what = result.ref !== undefined ? `a signed push of ${result.ref} at ${result.sha ?? ''}` : 'a signed event';
  console.log(`sent ${what} to ${result.url}: HTTP ${result.status}`);
  const body = result.body as { runs?: Array<{ id: string; job: string; joined?: boolean }>; reason?: string; error?: string };
  const runs = body.runs ?? [];
  for (const run of runs) console.log(`${run.joined === true ? 'joined' : 'queued'} run ${run.id} of job ${run.job}; log: ${join(config.logDir, run.job, `${run.id}.log`)}`);
  if (body.reason) console.log(`nothing queued: ${body.reason}`);
  if (body.error) console.log(`error: ${body.error}`);
  // A check of a set-up passes only when the job itself queued a run.
  const queued = runs.some((run) => run.job === jobName);
  if (result.status < 300 && runs.length > 0 && !queued) {
    console.log(`nothing queued for job ${jobName}: the daemon at ${result.url} queued only other jobs' runs (is it running with another config than ${config.file}?)`);
  }
  if (result.status >= 300 || !queued) process.exit(1);
}

interface ClientFlags {
  config: string;
  url?: string;
  token?: string;
  tokenFile?: string;
}

/** The token in a file given with --token-file, read as the daemon reads api.token_file. */
async function tokenFromFile(file: string): Promise<string> {
  const { readApiToken } = await import('./config/api-token.js');
  const read = await readApiToken({ file }, process.env);
  return 'value' in read ? read.value : fail(new DeployhookError('TOKEN_FILE', `--token-file: ${read.problem}`));
}

/** The API client for a command: URL and token from the flags, else from the daemon's config. */
async function client(flags: ClientFlags): Promise<ApiClient> {
  if (flags.token === undefined && flags.tokenFile !== undefined) flags.token = await tokenFromFile(flags.tokenFile);
  const readToken = flags.token === undefined && !process.env.DEPLOYHOOK_TOKEN;
  const needConfig = readToken || flags.url === undefined;
  const { loadClientConfig } = await import('./config/load-client.js');
  const { clientFor } = await import('./client/api-client.js');
  const config = needConfig ? await loadClientConfig(flags.config, process.env, { readToken }).catch(fail) : undefined;
  try {
    return clientFor(config, flags, process.env);
  } catch (error) {
    return fail(error);
  }
}

/** Prints a run's log to stdout; followed, the exit code says how the run ended. */
async function printLog(api: ApiClient, runId: string, follow: boolean, answered = false): Promise<void> {
  // `logs … | head`: a reader that has read enough ends it as SIGPIPE would any other tool.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => (error.code === 'EPIPE' ? process.exit(141) : fail(error)));
  // On a terminal, escape sequences from the log (a pusher's commit subject, say) are shown, not obeyed.
  const safe = process.stdout.isTTY ? (await import('./client/terminal-safe.js')).createTerminalFilter() : undefined;
  const { showLog, FOLLOW } = await commands();
  const status = await showLog(api, runId, follow, (chunk) => process.stdout.write(safe ? safe(chunk) : chunk), console.error, { ...FOLLOW, answered }).catch(fail);
  if (safe) process.stdout.write(safe.flush());
  // A skipped run (no changed file matched `paths`) did what its config asks: not an error.
  if (follow && status !== 'succeeded' && status !== 'skipped') process.exitCode = 1;
}

function clientCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('-c, --config <file>', 'the daemon\'s config file (for its address and API token)', DEFAULT_CONFIG)
    .option('--url <url>', 'the daemon\'s URL (default: api.url, or the config\'s listen address)')
    .option('--token <token>', 'API token; other users of the machine can read a command line, so prefer --token-file (default: $DEPLOYHOOK_TOKEN, or api.token_env / api.token_file from the config)')
    .option('--token-file <file>', 'read the API token from this file (one trailing newline ignored)');
}

const program = new Command('deployhook')
  .description('A small, trustworthy GitOps daemon: verified push webhooks in, one deploy at a time per job, every run logged.')
  .version(packageJson.version)
  .showHelpAfterError();

program
  .command('serve')
  .description('run the daemon in the foreground')
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .option('--listen <host:port>', 'listen here instead of the config\'s `listen`', listenOption)
  .action(serve);

program
  .command('check')
  .description('validate a config file (and its jobs_dir): exit 0 when valid, 1 with every problem otherwise')
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .action(check);

program
  .command('send')
  .description('send a job a correctly signed push, exactly as its Git host would (a generic job: a signed event), to check a set-up end to end')
  .argument('<job>', 'job name')
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .option('--ref <ref>', 'branch or full ref to push (default: the job\'s branch if it names one, else the remote\'s HEAD branch if the job deploys it)')
  .option('--sha <sha>', 'commit to push (default: what the ref points to on the remote)')
  .option('--data <json>', 'for a generic job: the event to send, as JSON (default: {})')
  .option('--url <url>', 'webhook URL (default: http://<listen>/hooks/<provider>, or /hooks/generic/<source>)')
  .action(send);

clientCommand('jobs', 'list the jobs of a running daemon: state, last run, deployed commit').action(async (flags: ClientFlags) => {
  await (await commands()).listJobs(await client(flags), console.log).catch(fail);
});

clientCommand('runs', 'list runs, newest first')
  .option('--job <job>', 'only this job')
  .option('--status <status>', 'only runs with this status')
  .option('--limit <n>', 'at most this many', '20')
  .option('--before <run>', 'only runs older than this one (the next page after it)')
  .action(async (flags: ClientFlags & { job?: string; status?: string; limit?: string; before?: string }) => {
    await (await commands()).listRuns(await client(flags), { job: flags.job, status: flags.status, limit: flags.limit, before: flags.before }, console.log).catch(fail);
  });

clientCommand('logs', 'print a run\'s log')
  .argument('<run>', 'run id')
  .option('-f, --follow', 'keep printing new output until the run ends; exit 0 only if it succeeded or was skipped')
  .action(async (runId: string, flags: ClientFlags & { follow?: boolean }) => {
    await printLog(await client(flags), runId, flags.follow === true);
  });

clientCommand('deploy', 'queue a deploy of a job: the tip of a branch, or exactly one commit (a rollback)')
  .argument('<job>', 'job name')
  .option('--ref <ref>', 'branch or full ref whose tip to deploy (default: the job\'s branch if it names one, else the remote\'s HEAD branch if the job deploys it)')
  .option('--sha <sha>', 'deploy exactly this commit; one a run of the job had may be named by its first 7 or more characters')
  .option('-f, --follow', 'then print the run\'s log until it ends, and exit 0 only if it succeeded')
  .action(async (job: string, flags: ClientFlags & { ref?: string; sha?: string; follow?: boolean }) => {
    const api = await client(flags);
    const runId = await (await commands()).deploy(api, job, { ref: flags.ref, sha: flags.sha }, flags.follow ? console.error : console.log).catch(fail);
    // The daemon has answered (it queued the run): losing it from here on is outlasted.
    if (flags.follow) await printLog(api, runId, true, true);
  });

clientCommand('cancel', 'cancel a queued run, or stop a running one')
  .argument('<run>', 'run id')
  .action(async (runId: string, flags: ClientFlags) => {
    await (await commands()).cancel(await client(flags), runId, console.log).catch(fail);
  });

await program.parseAsync(process.argv);
