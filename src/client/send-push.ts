import { execa } from 'execa';
import { gitEnvironment } from '../git/git-env.js';
import { jobGitAuth } from '../jobs/git-auth.js';
import type { Config, JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { COMMIT_PATTERN, isValidRef } from '../providers/validate.js';
import { buildPushDelivery } from './push-payload.js';

export interface SendOptions {
  config: Config;
  jobName: string;
  ref?: string;
  sha?: string;
  /** Where to send; default: the config's listen address. */
  url?: string;
  /** Environment for `git ls-remote` (PATH, HOME, and any GIT_SSH_COMMAND the operator set). */
  env: Readonly<Record<string, string | undefined>>;
}

export interface SendResult {
  url: string;
  ref: string;
  sha: string;
  status: number;
  body: unknown;
}

export function defaultHookUrl(config: Config, job: JobConfig): string {
  const { host, port } = config.listen;
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const hostPart = reachable.includes(':') ? `[${reachable}]` : reachable;
  return `http://${hostPart}:${port}/hooks/${job.provider}`;
}

/**
 * `git ls-remote` against the job's remote, with the job's own deploy key or token: the
 * branch HEAD names, and the commit a ref points to.
 */
async function lsRemote(job: JobConfig, pattern: string, env: Readonly<Record<string, string | undefined>>): Promise<string> {
  const remote = job.remote;
  const base = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && !entry[0].startsWith('GIT_')));
  try {
    const { stdout } = await execa('git', ['ls-remote', '--symref', '--', remote, pattern], { env: gitEnvironment(base, jobGitAuth(job), remote).env, extendEnv: false, timeout: 60_000 });
    return stdout;
  } catch (cause) {
    throw new DeployhookError('LS_REMOTE_FAILED', `Could not read ${pattern} from the remote ${remote}; pass --ref and --sha to send without asking the remote.`, { cause });
  }
}

async function resolveTarget(job: JobConfig, options: SendOptions): Promise<{ ref: string; sha: string }> {
  let ref = options.ref;
  if (ref !== undefined && !ref.startsWith('refs/')) ref = `refs/heads/${ref}`;
  if (ref === undefined) {
    const head = await lsRemote(job, 'HEAD', options.env);
    ref = /^ref: (refs\/heads\/\S+)\tHEAD$/m.exec(head)?.[1];
    if (ref === undefined) throw new DeployhookError('NO_REMOTE_HEAD', `Expected the remote ${job.remote} to have a HEAD branch; pass --ref.`);
  }
  if (!isValidRef(ref)) throw new DeployhookError('INVALID_REF', `Expected a branch or tag ref such as refs/heads/main, got ${JSON.stringify(ref)}`);
  let sha = options.sha;
  if (sha === undefined) {
    const listing = await lsRemote(job, ref, options.env);
    sha = listing.split('\n').find((line) => line.endsWith(`\t${ref}`))?.split('\t')[0];
    if (sha === undefined) throw new DeployhookError('REF_NOT_FOUND', `Expected ${ref} on the remote ${job.remote}, but it is not there; pass --sha.`);
  }
  if (!COMMIT_PATTERN.test(sha)) throw new DeployhookError('INVALID_SHA', `Expected a full 40 or 64 character commit id, got ${JSON.stringify(sha)}`);
  return { ref, sha };
}

/** Sends `job` a correctly signed push, exactly as its Git host would, and returns the reply. */
export async function sendPush(options: SendOptions): Promise<SendResult> {
  const job = options.config.jobs.find((candidate) => candidate.name === options.jobName);
  if (!job) {
    const names = options.config.jobs.map((candidate) => candidate.name).join(', ') || 'none';
    throw new DeployhookError('UNKNOWN_JOB', `No job named ${JSON.stringify(options.jobName)} in ${options.config.file}; its jobs: ${names}`);
  }
  const { ref, sha } = await resolveTarget(job, options);
  const delivery = buildPushDelivery(job, ref, sha);
  const url = options.url ?? defaultHookUrl(options.config, job);
  let response: Response;
  try {
    response = await fetch(url, { method: 'POST', headers: delivery.headers, body: delivery.body, signal: AbortSignal.timeout(30_000) });
  } catch (cause) {
    throw new DeployhookError('SEND_FAILED', `Could not reach deployhook at ${url}: is the daemon running? (${(cause as Error).cause instanceof Error ? ((cause as Error).cause as Error).message : String(cause)})`, { cause });
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { url, ref, sha, status: response.status, body };
}
