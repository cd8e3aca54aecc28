import * as z from 'zod';
import { SOURCE_PATTERN } from '../providers/generic.js';
import { isValidRef } from '../providers/validate.js';
import type { ProviderName } from './types.js';

/**
 * The job keys of generic signed events (`source`, `when`, `fields`) and of GitLab signing
 * tokens, and the rules that say which provider takes which keys.
 */

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** `commonLabels.severity`, `alerts.0.status`: dot-separated, no empty segment. */
// eslint-disable-next-line no-control-regex -- control characters are refused
const DOTTED_PATH = /^[^.\u0000-\u001f]+(?:\.[^.\u0000-\u001f]+)*$/;
const GLOB_CHARACTERS = /[*?[\]{}()!]/;

const pathIssue = (path: string) => (DOTTED_PATH.test(path) && path.length <= 500 ? undefined : `expected a dotted path into the payload such as \`commonLabels.severity\`, got ${JSON.stringify(path.slice(0, 100))}`);

const scalar = z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, a number or true/false' });

const variable = z.string({ error: 'expected an environment variable name' }).regex(ENV_NAME, { error: 'expected an environment variable name such as `GITLAB_SIGNING_TOKEN`' });
const file = z.string({ error: 'expected a path' }).trim().min(1, { error: 'expected a path, got an empty string' });
/** One name, or a list while rotating: each is tried. */
const oneOrMore = <T extends z.ZodType>(item: T, what: string) => z.union([item, z.array(item).min(1, { error: `expected at least one ${what}` })]);

export const eventJobShape = {
  /** Generic: `POST /hooks/generic/<source>`. */
  source: z.string({ error: 'expected a source such as `alertmanager`' }).regex(SOURCE_PATTERN, {
    error: (issue) => `expected 1 to 100 letters, digits, ".", "_" or "-" (the end of POST /hooks/generic/<source>), got ${JSON.stringify(issue.input)}`,
  }).optional(),
  /** Generic: dotted payload path -> the value (or any of the values) it must have. */
  when: z
    .record(z.string(), z.union([scalar, z.array(scalar).min(1, { error: 'expected at least one value' })], { error: 'expected a string, a number, true/false, or a list of them' }), { error: 'expected a mapping of payload paths to values, such as {status: firing}' })
    .superRefine((when, ctx) => {
      for (const path of Object.keys(when)) {
        const problem = pathIssue(path);
        if (problem) ctx.addIssue({ code: 'custom', path: [path], message: problem });
      }
    })
    .optional(),
  /** Generic: environment variable name -> dotted payload path. */
  fields: z
    .record(z.string(), z.string({ error: 'expected a dotted path into the payload such as `commonLabels.alertname`' }), { error: 'expected a mapping of variable names to payload paths, such as {ALERT_NAME: commonLabels.alertname}' })
    .superRefine((fields, ctx) => {
      for (const [name, path] of Object.entries(fields)) {
        // The command sees it as DEPLOYHOOK_FIELD_<name> (see jobs/event-fields.ts).
        const problem = !ENV_NAME.test(name) ? `expected an environment variable name such as ALERT_NAME, got ${JSON.stringify(name.slice(0, 100))}` : pathIssue(path);
        if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
      }
    })
    .optional(),
  /** GitLab: Standard Webhooks signing tokens (`whsec_...`), instead of a secret token; a list while rotating. */
  signing_token_env: oneOrMore(variable, 'variable name').optional(),
  signing_token_file: oneOrMore(file, 'path').optional(),
};

/** What the rules read of a job as written. */
export interface JobKeys {
  provider: ProviderName;
  repo?: string | undefined;
  source?: string | undefined;
  remote?: string | undefined;
  branches?: string[] | undefined;
  tags?: string[] | undefined;
  paths?: string[] | undefined;
  workdir?: string | undefined;
  checkout?: string | undefined;
  ssh_key?: string | undefined;
  known_hosts?: string | undefined;
  token_env?: string | undefined;
  token_file?: string | undefined;
  submodules: boolean;
  secret_env?: string | string[] | undefined;
  secret_file?: string | string[] | undefined;
  signing_token_env?: string | string[] | undefined;
  signing_token_file?: string | string[] | undefined;
  when?: Record<string, unknown> | undefined;
  fields?: Record<string, string> | undefined;
  env: Record<string, string>;
}

type Ctx = z.core.$RefinementCtx;

const issue = (ctx: Ctx, path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', path, message });

/** Exactly one source of the job's credential: a GitLab job may use signing tokens instead of a secret token. */
export function credentialRules(job: JobKeys, ctx: Ctx): void {
  const keys = job.provider === 'gitlab' ? (['secret_env', 'secret_file', 'signing_token_env', 'signing_token_file'] as const) : (['secret_env', 'secret_file'] as const);
  const given = keys.filter((key) => job[key] !== undefined);
  // Signing tokens on a job of another provider: the provider's rules say what to use instead.
  const misplacedSigning = keys.length === 2 && (job.signing_token_env !== undefined || job.signing_token_file !== undefined);
  if (given.length === 1 || (given.length === 0 && misplacedSigning)) return;
  const list = `${keys.slice(0, -1).join(', ')} or ${keys.at(-1) ?? ''}`;
  const got = given.length === 0 ? 'neither' : keys.length === 2 ? 'both' : given.join(' and ');
  issue(ctx, [keys.length === 2 ? 'secret_env' : (given[1] ?? 'secret_env')], `expected exactly one of ${list}, got ${got}`);
}

/** A Git host's job: a repository and a remote; the keys of generic events are not for it. */
export function hostJobRules(job: JobKeys, ctx: Ctx): void {
  if (job.repo === undefined) issue(ctx, ['repo'], 'expected a repository such as `owner/name`, but it is missing');
  if (job.remote === undefined) issue(ctx, ['remote'], 'expected a git URL or path, but it is missing');
  if (job.source !== undefined) issue(ctx, ['source'], `expected \`source\` only on a generic job; a ${job.provider} job names its \`repo\``);
  for (const key of ['when', 'fields'] as const) {
    if (job[key] !== undefined) issue(ctx, [key], `expected \`${key}\` only on a generic job; a ${job.provider} job deploys the pushes its \`branches\` and \`tags\` match`);
  }
  if (job.provider !== 'gitlab') {
    for (const key of ['signing_token_env', 'signing_token_file'] as const) {
      if (job[key] !== undefined) issue(ctx, [key], `expected signing tokens only on a gitlab job; a ${job.provider} job verifies with secret_env or secret_file`);
    }
  }
}

/** A generic job: a source instead of a repository; without a remote, a workdir and nothing of git. */
export function genericJobRules(job: JobKeys, ctx: Ctx): void {
  if (job.source === undefined) issue(ctx, ['source'], 'expected a source such as `alertmanager` (the end of POST /hooks/generic/<source>), but it is missing');
  if (job.repo !== undefined) issue(ctx, ['repo'], 'expected no `repo` on a generic job: events come from its `source` (POST /hooks/generic/<source>), not from a repository');
  if (job.tags !== undefined) issue(ctx, ['tags'], 'expected no `tags` on a generic job: with a `remote`, each event deploys the tip of its one branch');
  if (job.paths !== undefined) issue(ctx, ['paths'], 'expected no `paths` on a generic job: an event changes no files');
  for (const key of ['signing_token_env', 'signing_token_file'] as const) {
    if (job[key] !== undefined) issue(ctx, [key], 'expected secret_env or secret_file on a generic job (a whsec_ secret); signing tokens are for gitlab jobs');
  }
  if (job.remote === undefined) {
    if (job.workdir === undefined) issue(ctx, ['workdir'], 'expected `workdir`, the folder the command runs in (or a `remote` to check out), but it is missing');
    if (job.branches !== undefined) issue(ctx, ['branches'], 'expected no `branches` on a generic job without a `remote`: it runs in its workdir, without git');
    for (const key of ['checkout', 'ssh_key', 'known_hosts', 'token_env', 'token_file'] as const) {
      if (job[key] !== undefined) issue(ctx, [key], `expected no \`${key}\` on a generic job without a \`remote\`: nothing is fetched`);
    }
    if (job.submodules) issue(ctx, ['submodules'], 'expected no `submodules` on a generic job without a `remote`: nothing is fetched');
    return;
  }
  const branches = job.branches ?? [];
  if (branches.length !== 1) {
    const got = branches.length === 0 ? 'but it is missing' : `got ${branches.length}`;
    issue(ctx, ['branches'], `expected exactly one branch, whose tip each event deploys, such as [main], ${got}`);
  }
  const branch = branches[0];
  if (branch !== undefined && (GLOB_CHARACTERS.test(branch) || !isValidRef(`refs/heads/${branch}`))) {
    issue(ctx, ['branches', 0], `expected a plain branch name such as main, not a glob, got ${JSON.stringify(branch)}`);
  }
}
