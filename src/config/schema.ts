import picomatch from 'picomatch';
import * as z from 'zod';
import { parseDuration } from './duration.js';
import { credentialRules, eventJobShape, genericJobRules, hostJobRules } from './event-schema.js';
import { forwardListSchema, providersSchema } from './forward-schema.js';
import { parseCidr } from './cidr.js';
import { parseListenAddress } from './listen-address.js';
import { PROVIDER_NAMES, type ProviderName } from './types.js';

/**
 * The config file as written, checked strictly: unknown keys are errors. Values are
 * still raw here (relative paths, secret names); load.ts resolves them.
 */

export const JOB_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
const REPO_SEGMENT = '[A-Za-z0-9_.-]+';
const GITHUB_REPO = new RegExp(`^${REPO_SEGMENT}/${REPO_SEGMENT}$`);
const GITLAB_REPO = new RegExp(`^${REPO_SEGMENT}(/${REPO_SEGMENT})+$`);
/** Data Center project keys start with a letter; a personal repository's project is `~user`. */
const BITBUCKET_SERVER_REPO = new RegExp(`^(?:[A-Za-z][A-Za-z0-9_]*|~${REPO_SEGMENT})/${REPO_SEGMENT}$`);
const GROUP_REPO = { pattern: GITLAB_REPO, shape: '`group/name` or `group/sub/name`' };
const REPO_SHAPES: Partial<Record<ProviderName, { pattern: RegExp; shape: string }>> = {
  github: { pattern: GITHUB_REPO, shape: '`owner/name`' },
  gitea: { pattern: GITHUB_REPO, shape: '`owner/name`' },
  forgejo: { pattern: GITHUB_REPO, shape: '`owner/name`' },
  bitbucket: { pattern: GITHUB_REPO, shape: '`workspace/repo-slug` (the workspace ID, then the repository slug)' },
  'bitbucket-server': { pattern: BITBUCKET_SERVER_REPO, shape: '`PROJECT/repo-slug` (the project key, then the repository slug; `~user/repo-slug` for a personal repository)' },
};
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * What an HTTP(S) URL holds before its host (everything up to the authority's last `@`, as a
 * URL parser reads it, an `@` in a user name included), or undefined when nothing.
 */
function httpUserInfo(remote: string): string | undefined {
  const authority = /^\s*https?:\/\/([^/?#]*)/i.exec(remote)?.[1];
  const at = authority?.lastIndexOf('@') ?? -1;
  return authority !== undefined && at >= 0 ? authority.slice(0, at) : undefined;
}
/** Whether an HTTP(S) URL has a password before its host (`https://user:password@host`). */
const hasHttpPassword = (remote: string): boolean => httpUserInfo(remote)?.includes(':') === true;

const nonEmpty = (what: string) => z.string({ error: `expected ${what}` }).trim().min(1, { error: `expected ${what}, got an empty string` });

const duration = z.string({ error: 'expected a duration such as `90s` or `15m`' }).refine((text) => parseDuration(text) !== undefined, {
  error: (issue) => `expected a duration such as \`90s\` or \`15m\`, got ${JSON.stringify(issue.input)}`,
});

const glob = z
  .string({ error: 'expected a non-empty glob' })
  .min(1, { error: 'expected a non-empty glob' })
  .refine(
    (pattern) => {
      if (pattern === '') return true;
      try {
        picomatch(pattern);
        return true;
      } catch {
        return false;
      }
    },
    { error: (issue) => `expected a valid glob, got ${JSON.stringify(issue.input)}` },
  );

const globList = (what: string) =>
  z
    .array(glob, { error: `expected a list of ${what} globs` })
    .min(1, { error: `expected at least one ${what} glob` })
    .refine((globs) => globs.length === 0 || globs.some((pattern) => !pattern.startsWith('!')), { error: 'expected at least one glob that is not an exclusion ("!...")' });

/** A `paths` glob: files relative to the repository root; `!` in front excludes. */
const pathGlob = glob.superRefine((pattern, ctx) => {
  const body = pattern.startsWith('!') ? pattern.slice(1) : pattern;
  if (pattern === '') return;
  if (body === '') ctx.addIssue({ code: 'custom', message: 'expected a glob after "!", such as "!docs/**"' });
  else if (body.startsWith('/')) ctx.addIssue({ code: 'custom', message: `expected a path relative to the repository root such as "deploy/**", got ${JSON.stringify(pattern)}` });
  else if (body.endsWith('/')) ctx.addIssue({ code: 'custom', message: `expected a glob of files such as "${pattern}**", got ${JSON.stringify(pattern)}, which matches no file` });
});

/** A list of only exclusions is allowed: it means every file but those. */
const pathGlobList = z.array(pathGlob, { error: 'expected a list of file globs such as ["deploy/**", "!docs/**"]' }).min(1, { error: 'expected at least one file glob' });

const envName = nonEmpty('an environment variable name').regex(ENV_NAME, { error: 'expected an environment variable name such as `DEPLOY_SECRET`' });

export const jobSchema = z
  .strictObject({
    name: nonEmpty('a job name').max(100, { error: 'expected at most 100 characters' }).regex(JOB_NAME_PATTERN, {
      error: (issue) => `expected lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, got ${JSON.stringify(issue.input)}`,
    }),
    provider: z.enum(PROVIDER_NAMES, { error: (issue) => `expected one of ${PROVIDER_NAMES.map((name) => `"${name}"`).join(', ')}, got ${JSON.stringify(issue.input)}` }),
    repo: nonEmpty('a repository such as `owner/name`').optional(),
    branches: globList('branch').optional(),
    /** Tag globs: a tag push deploys the tag's (peeled) commit. Branch rules never fire for tags, nor tag rules for branches. */
    tags: globList('tag').optional(),
    /** Deploy only when a file changed since the last deploy matches (webhook runs and their repeats). */
    paths: pathGlobList.optional(),
    // A list during rotation: the old and the new secret are both accepted.
    secret_env: z.union([envName, z.array(envName).min(1, { error: 'expected at least one variable name' })]).optional(),
    secret_file: z.union([nonEmpty('a path'), z.array(nonEmpty('a path')).min(1, { error: 'expected at least one path' })]).optional(),
    remote: nonEmpty('a git URL or path')
      .refine((remote) => !remote.startsWith('-'), { error: 'expected a git URL or path, got a value starting with "-"' })
      .refine((remote) => !hasHttpPassword(remote), {
        error: "expected an HTTP(S) remote without a password in it (not shown): give it with token_file or token_env, and the user name as token_user or in the URL. In the URL it would show in `ps`, in the checkout's .git/config and in the run log",
      })
      .optional(),
    checkout: nonEmpty('a path').optional(),
    command: z.array(z.string({ error: 'expected a string' }), { error: 'expected an argv list such as ["ansible-playbook", "site.yml"]' }).min(1, {
      error: 'expected an argv list with at least the program',
    }).refine((argv) => argv.length === 0 || (argv[0] ?? '').trim() !== '', { error: 'expected the program as the first element, got an empty string' }),
    workdir: nonEmpty('a folder (inside the checkout; for a generic job without a remote, the folder to run in)').optional(),
    env: z.record(z.string().regex(ENV_NAME, { error: 'expected an environment variable name' }), z.string({ error: 'expected a string value' })).default({}),
    timeout: duration.refine((text) => (parseDuration(text) ?? 1) > 0, { error: 'expected a timeout longer than zero' }).default('30m'),
    kill_grace: duration.default('10s'),
    ssh_key: nonEmpty('a path').optional(),
    known_hosts: nonEmpty('a path').optional(),
    token_env: envName.optional(),
    token_file: nonEmpty('a path').optional(),
    token_user: nonEmpty('a user name').default('x-access-token'),
    submodules: z.boolean({ error: 'expected true or false' }).default(false),
    /** Fan-out: deliveries that queue a run of this job are also relayed to these destinations. */
    forward: forwardListSchema.optional(),
    run_as: z
      .strictObject({
        user: nonEmpty('a user name or uid'),
        group: nonEmpty('a group name or gid').optional(),
      })
      .optional(),
  })
  .extend(eventJobShape)
  .superRefine((job, ctx) => {
    credentialRules(job, ctx);
    if (job.provider === 'generic') genericJobRules(job, ctx);
    else hostJobRules(job, ctx);
    if (job.provider !== 'generic' && job.branches === undefined && job.tags === undefined) {
      ctx.addIssue({ code: 'custom', path: ['branches'], message: 'expected branch globs, tag globs (`tags`), or both' });
    }
    // A user name alone is often the token itself (`https://<token>@github.com`), which would
    // show in the run log; with a token beside it, it is a name.
    if (job.remote !== undefined && httpUserInfo(job.remote) !== undefined && !hasHttpPassword(job.remote) && job.token_env === undefined && job.token_file === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['remote'],
        message: "expected token_file or token_env beside an HTTP(S) remote with a user name in it (not shown): a user name alone there is often the token itself (https://<token>@github.com), which would show in `ps`, in the checkout's .git/config and in the run log. Give the token with token_file or token_env",
      });
    }
    if (job.token_env !== undefined && job.token_file !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['token_env'], message: 'expected at most one of token_env or token_file, got both' });
    }
    const { pattern, shape } = REPO_SHAPES[job.provider] ?? GROUP_REPO;
    if (job.provider !== 'generic' && job.repo !== undefined && !pattern.test(job.repo)) {
      ctx.addIssue({ code: 'custom', path: ['repo'], message: `expected a ${job.provider} repository such as ${shape}, got ${JSON.stringify(job.repo)}` });
    }
    for (const key of Object.keys(job.env)) {
      if (key.startsWith('DEPLOYHOOK_')) {
        ctx.addIssue({ code: 'custom', path: ['env', key], message: 'expected a name outside DEPLOYHOOK_*, which deployhook sets itself' });
      }
    }
  });

const cidr = z.string({ error: 'expected a network such as "192.0.2.0/24" or "2001:db8::/32"' }).refine((text) => parseCidr(text) !== undefined, {
  error: (issue) => `expected a network such as "192.0.2.0/24" or "2001:db8::/32", got ${JSON.stringify(issue.input)}`,
});

const networks = z.array(cidr, { error: 'expected a list of networks' });

export const configSchema = z.strictObject({
  listen: z
    .string({ error: 'expected "host:port"' })
    .refine((text) => parseListenAddress(text) !== undefined, { error: (issue) => `expected "host:port" such as "127.0.0.1:9000", got ${JSON.stringify(issue.input)}` })
    .default('127.0.0.1:9000'),
  state_dir: nonEmpty('a path'),
  log_dir: nonEmpty('a path'),
  jobs_dir: nonEmpty('a path').optional(),
  max_parallel: z.number({ error: 'expected a whole number from 1 to 256' }).int({ error: 'expected a whole number from 1 to 256' }).min(1).max(256).default(4),
  max_body_bytes: z
    .number({ error: 'expected a number of bytes' })
    .int({ error: 'expected a whole number of bytes' })
    .min(1_024, { error: 'expected at least 1024 bytes' })
    .max(1_073_741_824, { error: 'expected at most 1 GiB' })
    .default(25 * 1024 * 1024),
  max_log_bytes: z
    .number({ error: 'expected a number of bytes' })
    .int({ error: 'expected a whole number of bytes' })
    .min(4_096, { error: 'expected at least 4096 bytes' })
    .default(100 * 1024 * 1024),
  keep_runs: z.number({ error: 'expected a whole number of runs' }).int({ error: 'expected a whole number of runs' }).min(1, { error: 'expected at least 1' }).default(100),
  shutdown_timeout: duration.default('60s'),
  dedup_window: duration.refine((text) => (parseDuration(text) ?? 1) > 0, { error: 'expected a window longer than zero' }).default('7d'),
  /** How far a Standard Webhooks `webhook-timestamp` may be from the clock, either way (the replay window). */
  timestamp_tolerance: duration.refine((text) => (parseDuration(text) ?? 1) > 0, { error: 'expected a tolerance longer than zero' }).default('5m'),
  tls: z
    .strictObject({
      cert: nonEmpty('a path to a PEM certificate (chain)'),
      key: nonEmpty('a path to a PEM private key'),
      /** When set, clients must present a certificate signed by this CA (mutual TLS). */
      client_ca: nonEmpty('a path to a PEM CA certificate').optional(),
    })
    .optional(),
  /** Per provider, the networks deliveries may come from; others get 403 before the body is read. */
  allow_from: z.partialRecord(z.enum(PROVIDER_NAMES, { error: `expected a provider name: ${PROVIDER_NAMES.join(', ')}` }), networks).default({}),
  /** Reverse proxies whose X-Forwarded-For is believed, as networks; none by default. */
  trust_proxy: networks.default([]),
  max_connections: z.number({ error: 'expected a whole number' }).int({ error: 'expected a whole number' }).min(1, { error: 'expected at least 1' }).default(1024),
  headers_timeout: duration.default('10s'),
  request_timeout: duration.default('30s'),
  /** The operator API, CLI and status page: off (404) unless a token is configured. */
  api: z
    .strictObject({
      token_env: envName.optional(),
      token_file: nonEmpty('a path').optional(),
      /** A second, read-only token for the status page and GET requests. */
      ui_token_env: envName.optional(),
      ui_token_file: nonEmpty('a path').optional(),
      /** Where the CLI reaches the daemon; default http(s)://<listen>. */
      url: nonEmpty('a URL such as https://deploy.example.com').optional(),
    })
    .superRefine((api, ctx) => {
      if ((api.token_env === undefined) === (api.token_file === undefined)) ctx.addIssue({ code: 'custom', path: ['token_env'], message: 'expected exactly one of token_env or token_file' });
      if (api.ui_token_env !== undefined && api.ui_token_file !== undefined) ctx.addIssue({ code: 'custom', path: ['ui_token_env'], message: 'expected at most one of ui_token_env or ui_token_file' });
    })
    .optional(),
  /** Per provider: fan-out of every verified delivery (`providers.github.forward`). */
  providers: providersSchema.default({}),
  /** A head commit message containing this queues nothing. */
  skip_marker: nonEmpty('a marker such as "[skip deploy]"').default('[skip deploy]'),
  jobs: z.array(z.unknown(), { error: 'expected a list of jobs' }).default([]),
});

/** A file in jobs_dir: either `jobs: [...]` or a single job. */
export const jobsFileSchema = z.strictObject({ jobs: z.array(z.unknown(), { error: 'expected a list of jobs' }) });

export type RawConfig = z.infer<typeof configSchema>;
export type RawJob = z.infer<typeof jobSchema>;

export const CONFIG_KEYS = Object.keys(configSchema.shape);
export const JOB_KEYS = Object.keys(jobSchema.shape);
