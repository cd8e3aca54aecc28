import { access, constants, readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import yaml from 'js-yaml';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { formatPath, toConfigIssues } from './format-issues.js';
import { parseListenAddress } from './listen-address.js';
import { parseCidr, type Cidr } from './cidr.js';
import { readApiToken } from './api-token.js';
import { readJobSecrets } from './read-job-secrets.js';
import { readSecret, secretSource } from './read-secret.js';
import { resolveEventJob } from './resolve-event-job.js';
import { resolveForwards } from './resolve-forward.js';
import { resolveRunAs } from './system-users.js';
import { resolveConfigPath, resolveRemote, safeRelativeFolder } from './resolve-paths.js';
import { CONFIG_KEYS, configSchema, JOB_KEYS, jobSchema, type RawJob } from './schema.js';
import { checkoutClashes } from './checkout-clashes.js';
import { filesOfJobsDir, jobsOfFile } from './jobs-dir.js';
import type { RawForward } from './forward-schema.js';
import type { Config, JobConfig, ProviderName } from './types.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Secrets shorter than this still load, but `deployhook check` warns about them. */
const SHORT_SECRET_BYTES = 16;

async function readYaml(file: string, issues: ConfigIssue[], where: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    issues.push({ path: where, message: `expected a readable YAML file at ${file}, got ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
    return undefined;
  }
  try {
    return yaml.load(text, { filename: file }) ?? {};
  } catch (error) {
    issues.push({ path: where, message: `expected valid YAML: ${(error as Error).message.split('\n')[0] ?? ''}` });
    return undefined;
  }
}

async function resolveJob(raw: RawJob, baseDir: string, stateDir: string, source: string, path: string, env: Env, issues: ConfigIssue[], warnings: string[]): Promise<JobConfig | undefined> {
  const at = (key: string) => formatPath([key], path);
  const credentials = await readJobSecrets(raw, baseDir, env, path, issues, warnings);
  const eventJob = raw.provider === 'generic' ? await resolveEventJob(raw, baseDir, path, issues) : undefined;

  let token: JobConfig['token'];
  const tokenSource = secretSource(raw.token_env, raw.token_file, baseDir);
  if (tokenSource !== undefined) {
    const read = await readSecret(tokenSource.source, env);
    if ('problem' in read) issues.push({ path: at(`token_${tokenSource.key}`), message: read.problem });
    else token = { user: raw.token_user, value: read.value };
  }

  for (const key of ['ssh_key', 'known_hosts'] as const) {
    const path = raw[key];
    if (path === undefined) continue;
    const problem = await access(resolveConfigPath(baseDir, path), constants.R_OK).then(() => undefined, (error: NodeJS.ErrnoException) => error.code ?? String(error));
    if (problem !== undefined) issues.push({ path: at(key), message: `expected a readable file at ${resolveConfigPath(baseDir, path)}, got ${problem}` });
  }

  let workdir: string | undefined;
  if (raw.workdir !== undefined && eventJob?.folder === undefined) {
    workdir = safeRelativeFolder(raw.workdir);
    if (workdir === undefined) issues.push({ path: at('workdir'), message: `expected a relative folder inside the checkout, got ${JSON.stringify(raw.workdir)}` });
  }
  let runAs: JobConfig['runAs'];
  if (raw.run_as !== undefined) {
    const resolved = await resolveRunAs(raw.run_as.user, raw.run_as.group);
    if ('problem' in resolved) issues.push({ path: at('run_as'), message: resolved.problem });
    else if (process.getuid?.() !== 0 && (process.getuid?.() !== resolved.uid || process.getgid?.() !== resolved.gid)) {
      const as = process.getuid?.() !== resolved.uid ? `user ${resolved.user}` : `group gid ${resolved.gid}`;
      issues.push({ path: at('run_as'), message: `expected deployhook to run as root to switch to ${as}, but it runs as uid ${String(process.getuid?.())}, gid ${String(process.getgid?.())}` });
    }
    else runAs = resolved;
  }
  if (credentials === undefined) return undefined;

  const job: JobConfig = {
    name: raw.name,
    provider: raw.provider,
    repo: raw.repo ?? '',
    repoKey: (raw.repo ?? raw.source ?? '').toLowerCase(),
    branches: raw.branches ?? [],
    tags: raw.tags ?? [],
    secrets: credentials.secrets,
    ...(raw.remote !== undefined ? { remote: resolveRemote(baseDir, raw.remote) } : {}),
    checkout: eventJob?.folder ?? (raw.checkout !== undefined ? resolveConfigPath(baseDir, raw.checkout) : join(stateDir, 'checkouts', raw.name)),
    command: raw.command,
    env: raw.env,
    timeoutMs: parseDuration(raw.timeout) ?? 0,
    killGraceMs: parseDuration(raw.kill_grace) ?? 0,
    submodules: raw.submodules,
    forward: await resolveForwards(raw.forward ?? [], baseDir, env, at('forward'), issues, warnings, raw.provider === 'generic'),
    source,
  };
  if (workdir !== undefined) job.workdir = workdir;
  if (raw.paths !== undefined) job.paths = raw.paths;
  if (raw.ssh_key !== undefined) job.sshKey = resolveConfigPath(baseDir, raw.ssh_key);
  if (raw.known_hosts !== undefined) job.knownHosts = resolveConfigPath(baseDir, raw.known_hosts);
  if (token !== undefined) job.token = token;
  if (runAs !== undefined) job.runAs = runAs;
  if (credentials.signingTokens !== undefined) job.signingTokens = credentials.signingTokens;
  if (eventJob !== undefined) job.event = eventJob.event;
  return job;
}

/**
 * Loads and checks a config file and every file in its jobs_dir. Throws a ConfigError
 * listing every problem with its path; never returns a half-valid config.
 */
export async function loadConfig(configFile: string, env: Env): Promise<Config> {
  const file = resolve(configFile);
  const baseDir = dirname(file);
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const document = await readYaml(file, issues, '');
  if (document === undefined) throw new ConfigError(file, issues);

  const parsed = configSchema.safeParse(document, { reportInput: true });
  if (!parsed.success) throw new ConfigError(file, toConfigIssues(parsed.error.issues, '', (path) => (path.length === 0 ? CONFIG_KEYS : undefined)));
  const raw = parsed.data;
  const stateDir = resolveConfigPath(baseDir, raw.state_dir);

  // Each entry: the raw job, the folder its relative paths resolve against, and where it came from.
  const entries: Array<{ job: unknown; baseDir: string; source: string; path: string }> = raw.jobs.map((job, index) => ({ job, baseDir, source: file, path: `jobs[${index}]` }));
  if (raw.jobs_dir !== undefined) {
    for (const jobsFile of await filesOfJobsDir(resolveConfigPath(baseDir, raw.jobs_dir), issues)) {
      const where = `${basename(jobsFile)}: `;
      const fileDocument = await readYaml(jobsFile, issues, basename(jobsFile));
      if (fileDocument === undefined) continue;
      // Commented out whole, the way to turn a repository's jobs off for a while.
      if (typeof fileDocument === 'object' && fileDocument !== null && Object.keys(fileDocument).length === 0) {
        warnings.push(`${basename(jobsFile)}: no job in this file (it is empty, or only comments); skipped`);
        continue;
      }
      const inFile = jobsOfFile(fileDocument, where, issues);
      const single = inFile.length === 1 && inFile[0] === fileDocument;
      inFile.forEach((job, index) => entries.push({ job, baseDir: dirname(jobsFile), source: jobsFile, path: single ? where : `${where}jobs[${index}]` }));
    }
  }

  const jobs: JobConfig[] = [];
  for (const entry of entries) {
    const parsedJob = jobSchema.safeParse(entry.job, { reportInput: true });
    if (!parsedJob.success) {
      issues.push(...toConfigIssues(parsedJob.error.issues, entry.path, (path) => (path.length === 0 ? JOB_KEYS : undefined)));
      continue;
    }
    const job = await resolveJob(parsedJob.data, entry.baseDir, stateDir, entry.source, entry.path, env, issues, warnings);
    if (job) jobs.push(job);
  }

  const byName = new Map<string, JobConfig>();
  for (const job of jobs) {
    const sameName = byName.get(job.name);
    if (sameName) issues.push({ path: `job "${job.name}"`, message: `expected unique job names, but "${job.name}" is defined in ${sameName.source} and ${job.source}` });
    byName.set(job.name, job);
  }
  // A job without a remote runs in its folder and never cleans it: folders may be shared.
  issues.push(...checkoutClashes(jobs.filter((job) => job.remote !== undefined), { state: stateDir, log: resolveConfigPath(baseDir, raw.log_dir) }));
  // node refuses to make a server whose headers may take longer than the whole request.
  const headersTimeoutMs = parseDuration(raw.headers_timeout) ?? 10_000;
  const requestTimeoutMs = parseDuration(raw.request_timeout) ?? 30_000;
  if (requestTimeoutMs > 0 && headersTimeoutMs > requestTimeoutMs) issues.push({ path: 'headers_timeout', message: `expected at most request_timeout (${raw.request_timeout}), got ${raw.headers_timeout}` });
  // A signed delivery's timestamp may be that far behind or ahead of the clock: a replay within
  // those two tolerances must still be remembered, or its new copy would run again.
  const dedupWindowMs = parseDuration(raw.dedup_window) ?? 7 * 86_400_000;
  const timestampToleranceMs = parseDuration(raw.timestamp_tolerance) ?? 5 * 60_000;
  if (dedupWindowMs < 2 * timestampToleranceMs) issues.push({ path: 'dedup_window', message: `expected at least twice timestamp_tolerance (${raw.timestamp_tolerance}), got ${raw.dedup_window}` });
  if (issues.length > 0) throw new ConfigError(file, issues);

  let tls: Config['tls'];
  if (raw.tls !== undefined) {
    tls = { cert: resolveConfigPath(baseDir, raw.tls.cert), key: resolveConfigPath(baseDir, raw.tls.key) };
    if (raw.tls.client_ca !== undefined) tls.clientCa = resolveConfigPath(baseDir, raw.tls.client_ca);
    for (const [key, path] of Object.entries({ cert: tls.cert, key: tls.key, client_ca: tls.clientCa })) {
      if (path === undefined) continue;
      const problem = await access(path, constants.R_OK).then(() => undefined, (error: NodeJS.ErrnoException) => error.code ?? String(error));
      if (problem !== undefined) issues.push({ path: `tls.${key}`, message: `expected a readable PEM file at ${path}, got ${problem}` });
    }
  }
  let api: Config['api'];
  if (raw.api !== undefined) {
    const readToken = async (name: 'token' | 'ui_token', envName: string | undefined, file: string | undefined): Promise<string | undefined> => {
      const picked = secretSource(envName, file, baseDir);
      if (picked === undefined) return undefined;
      const path = `api.${name}_${picked.key}`;
      const read = await readApiToken(picked.source, env);
      if ('problem' in read) issues.push({ path, message: read.problem });
      else if (read.value.length < SHORT_SECRET_BYTES) issues.push({ path, message: `expected a token of at least ${SHORT_SECRET_BYTES} bytes (openssl rand -hex 32)` });
      else return read.value;
      return undefined;
    };
    const token = await readToken('token', raw.api.token_env, raw.api.token_file);
    const uiToken = await readToken('ui_token', raw.api.ui_token_env, raw.api.ui_token_file);
    if (token !== undefined) api = { token, ...(uiToken !== undefined ? { uiToken } : {}), ...(raw.api.url !== undefined ? { url: raw.api.url } : {}) };
  }
  const forwards: Config['forwards'] = {};
  for (const [provider, settings] of Object.entries(raw.providers) as Array<[ProviderName, { forward: RawForward[] }]>) {
    forwards[provider] = await resolveForwards(settings.forward, baseDir, env, `providers.${provider}.forward`, issues, warnings, provider === 'generic');
  }
  if (issues.length > 0) throw new ConfigError(file, issues);

  const cidrs = (list: readonly string[]): Cidr[] => list.map((text) => parseCidr(text)).filter((value): value is Cidr => value !== undefined);
  const listen = parseListenAddress(raw.listen);
  if (!listen) throw new ConfigError(file, [{ path: 'listen', message: 'expected "host:port"' }]);
  return {
    file,
    listen,
    stateDir,
    logDir: resolveConfigPath(baseDir, raw.log_dir),
    ...(tls !== undefined ? { tls } : {}),
    allowFrom: Object.fromEntries(Object.entries(raw.allow_from).map(([provider, list]) => [provider, cidrs(list)])),
    trustProxy: cidrs(raw.trust_proxy),
    ...(api !== undefined ? { api } : {}),
    skipMarker: raw.skip_marker,
    forwards,
    maxConnections: raw.max_connections,
    headersTimeoutMs,
    requestTimeoutMs,
    maxParallel: raw.max_parallel,
    maxBodyBytes: raw.max_body_bytes,
    maxLogBytes: raw.max_log_bytes,
    keepRuns: raw.keep_runs,
    shutdownTimeoutMs: parseDuration(raw.shutdown_timeout) ?? 60_000,
    dedupWindowMs,
    timestampToleranceMs,
    jobs,
    warnings,
  };
}
