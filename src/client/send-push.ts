import type { Config, JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { resolveTarget } from '../jobs/resolve-target.js';
import { daemonUrl } from './api-client.js';
import { buildEventDelivery } from './event-delivery.js';
import { buildPushDelivery } from './push-payload.js';

export interface SendOptions {
  config: Config;
  jobName: string;
  ref?: string;
  sha?: string;
  /** A generic job's event, as JSON text; default `{}`. */
  data?: string;
  /** Where to send; default: the config's listen address. */
  url?: string;
  /** Environment for `git ls-remote` (PATH, HOME, and any GIT_SSH_COMMAND the operator set). */
  env: Readonly<Record<string, string | undefined>>;
}

export interface SendResult {
  url: string;
  /** The push sent; absent for a generic job's event. */
  ref?: string;
  sha?: string;
  status: number;
  body: unknown;
}

export function defaultHookUrl(config: Config, job: JobConfig): string {
  return `${daemonUrl(config)}/hooks/${job.provider}${job.event ? `/${job.event.source}` : ''}`;
}

/**
 * Sends `job` a correctly signed push, exactly as its Git host would (a generic job: a signed
 * event with `data`), and returns the reply.
 */
export async function sendPush(options: SendOptions): Promise<SendResult> {
  const job = options.config.jobs.find((candidate) => candidate.name === options.jobName);
  if (!job) {
    const names = options.config.jobs.map((candidate) => candidate.name).join(', ') || 'none';
    throw new DeployhookError('UNKNOWN_JOB', `No job named ${JSON.stringify(options.jobName)} in ${options.config.file}; its jobs: ${names}`);
  }
  if (job.event !== undefined && (options.ref !== undefined || options.sha !== undefined)) {
    throw new DeployhookError('SEND_OPTIONS', `Job ${job.name} takes events, not pushes: send one with --data <json> instead of --ref or --sha`);
  }
  if (job.event === undefined && options.data !== undefined) {
    throw new DeployhookError('SEND_OPTIONS', `Job ${job.name} takes ${job.provider} pushes: --data is for generic jobs; use --ref or --sha`);
  }
  const target = job.event ? undefined : await resolveTarget(job, { ref: options.ref, sha: options.sha }, options.env, false);
  const delivery = target ? buildPushDelivery(job, target.ref, target.sha) : buildEventDelivery(job, options.data ?? '{}');
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
  return { url, ...target, status: response.status, body };
}
