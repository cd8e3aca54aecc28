import type { JobConfig } from '../config/types.js';
import type { RunRecord } from './run-record.js';

/**
 * A proxy the daemon is given (`Environment=https_proxy=…` in the unit), for git and the
 * command both: curl's names, which git uses. `HTTP_PROXY` in capitals is left out, as curl
 * does, since a CGI program finds a request's `Proxy:` header under that name.
 */
export const PROXY_VARIABLES = ['http_proxy', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'] as const;

/** The daemon variables a run inherits; nothing else of the daemon's environment leaks in. */
export const INHERITED_VARIABLES = ['PATH', 'HOME', 'LANG', ...PROXY_VARIABLES] as const;

export function baseEnvironment(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const base: Record<string, string> = {};
  for (const name of INHERITED_VARIABLES) {
    const value = env[name];
    if (value !== undefined) base[name] = value;
  }
  return base;
}

/** The base environment as the job's user sees it: with `run_as`, that user's HOME. */
export function userEnvironment(job: JobConfig, base: Readonly<Record<string, string>>): Record<string, string> {
  return job.runAs ? { ...base, HOME: job.runAs.home } : { ...base };
}

/**
 * The command's whole environment: the daemon's PATH, HOME, LANG and proxy, then the job's `env`, a
 * generic job's `fields` (payload values, each as DEPLOYHOOK_FIELD_<name>, a name no program
 * reads as code or configuration), then what deployhook knows about the run. Payload values arrive here only as data.
 */
export function commandEnvironment(job: JobConfig, run: RunRecord, base: Readonly<Record<string, string>>, fields: Readonly<Record<string, string>> = {}): Record<string, string> {
  return {
    ...base,
    ...job.env,
    ...fields,
    DEPLOYHOOK_JOB: job.name,
    DEPLOYHOOK_RUN_ID: run.id,
    DEPLOYHOOK_PROVIDER: run.trigger.provider,
    DEPLOYHOOK_REPO: run.repo,
    DEPLOYHOOK_REF: run.ref,
    DEPLOYHOOK_BRANCH: run.branch ?? '',
    DEPLOYHOOK_TAG: run.tag ?? '',
    DEPLOYHOOK_SHA: run.deployedSha ?? run.sha,
    DEPLOYHOOK_BEFORE: run.before,
    DEPLOYHOOK_DELIVERY: run.trigger.delivery,
    DEPLOYHOOK_PUSHER: run.trigger.pusher,
    DEPLOYHOOK_TRIGGER: run.trigger.type,
    DEPLOYHOOK_SOURCE: run.source ?? '',
    DEPLOYHOOK_EVENT_FILE: run.eventFile,
  };
}
