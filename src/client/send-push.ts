import type { Config, JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { resolveTarget } from '../jobs/resolve-target.js';
import { daemonUrl } from './api-client.js';
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
  return `${daemonUrl(config)}/hooks/${job.provider}`;
}

/** Sends `job` a correctly signed push, exactly as its Git host would, and returns the reply. */
export async function sendPush(options: SendOptions): Promise<SendResult> {
  const job = options.config.jobs.find((candidate) => candidate.name === options.jobName);
  if (!job) {
    const names = options.config.jobs.map((candidate) => candidate.name).join(', ') || 'none';
    throw new DeployhookError('UNKNOWN_JOB', `No job named ${JSON.stringify(options.jobName)} in ${options.config.file}; its jobs: ${names}`);
  }
  const { ref, sha } = await resolveTarget(job, { ref: options.ref, sha: options.sha }, options.env);
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
