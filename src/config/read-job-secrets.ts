import type { ConfigIssue } from '../errors.js';
import { isSigningSecret } from '../providers/standard-webhooks.js';
import { formatPath } from './format-issues.js';
import { readSecret } from './read-secret.js';
import { resolveConfigPath } from './resolve-paths.js';
import type { JobConfig } from './types.js';

type Env = Readonly<Record<string, string | undefined>>;

/** Secrets shorter than this still load, but `deployhook check` warns about them. */
const SHORT_SECRET_BYTES = 16;
/** Standard Webhooks keys: GitLab makes 32 random bytes; the specification's own example has 24. */
const MIN_SIGNING_KEY_BYTES = 24;

/** Whether `value` is a Standard Webhooks key of enough bytes; if not, the problem to report, naming `what` was expected. */
export function signingSecretProblem(value: string, what: string): string | undefined {
  if (isSigningSecret(value, MIN_SIGNING_KEY_BYTES)) return undefined;
  return `expected ${what}: whsec_ and the base64 of at least ${MIN_SIGNING_KEY_BYTES} random bytes (make one with: echo "whsec_$(openssl rand -base64 32)"), got something else`;
}

/** A job's own secrets: its webhook secrets or signing tokens, and its remote's HTTPS token. */
export function secretsOfJob(job: Pick<JobConfig, 'secrets' | 'signingTokens' | 'token'>): string[] {
  return [...job.secrets, ...(job.signingTokens ?? []), ...(job.token ? [job.token.value] : [])];
}

/** The credential keys of a job as written; the schema has checked that exactly one is set. */
export interface CredentialKeys {
  provider: string;
  secret_env?: string | string[] | undefined;
  secret_file?: string | string[] | undefined;
  signing_token_env?: string | string[] | undefined;
  signing_token_file?: string | string[] | undefined;
}

export interface JobSecrets {
  secrets: string[];
  /** GitLab signing tokens, when the job uses them instead of a secret token. */
  signingTokens?: string[];
}

const KEYS = ['secret_env', 'secret_file', 'signing_token_env', 'signing_token_file'] as const;

/**
 * Reads the job's webhook secrets (or GitLab signing tokens), each from its variable or file.
 * Signing tokens and generic jobs' secrets must be Standard Webhooks secrets: `whsec_` and the
 * base64 of at least 24 bytes. Undefined, with the problems in `issues`, when any is missing or
 * malformed; a message never quotes a secret.
 */
export async function readJobSecrets(raw: CredentialKeys, baseDir: string, env: Env, at: string, issues: ConfigIssue[], warnings: string[]): Promise<JobSecrets | undefined> {
  const key = KEYS.find((candidate) => raw[candidate] !== undefined) ?? 'secret_env';
  const signing = key.startsWith('signing_token_');
  const standard = signing || raw.provider === 'generic';
  const names = [raw[key] ?? []].flat();
  const values: string[] = [];
  for (const [index, name] of names.entries()) {
    const where = Array.isArray(raw[key]) ? formatPath([index], formatPath([key], at)) : formatPath([key], at);
    const read = await readSecret(key.endsWith('_env') ? { env: name } : { file: resolveConfigPath(baseDir, name), written: name }, env);
    if ('problem' in read) {
      issues.push({ path: where, message: read.problem });
      continue;
    }
    const problem = standard ? signingSecretProblem(read.value, signing ? 'a GitLab signing token' : 'a Standard Webhooks secret') : undefined;
    if (problem !== undefined) {
      issues.push({ path: where, message: problem });
      continue;
    }
    if (!standard && Buffer.byteLength(read.value) < SHORT_SECRET_BYTES) warnings.push(`${where}: the webhook secret is shorter than ${SHORT_SECRET_BYTES} bytes; use a long random one (openssl rand -hex 32)`);
    values.push(read.value);
  }
  if (values.length !== names.length) return undefined;
  return signing ? { secrets: [], signingTokens: values } : { secrets: values };
}
