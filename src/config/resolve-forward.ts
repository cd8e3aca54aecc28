import type { ConfigIssue } from '../errors.js';
import { parseDuration } from './duration.js';
import { formatPath } from './format-issues.js';
import type { RawForward } from './forward-schema.js';
import { signingSecretProblem } from './read-job-secrets.js';
import { keyShaped, readSecret, secretSource } from './read-secret.js';
import type { ForwardTarget } from './types.js';

type Env = Readonly<Record<string, string | undefined>>;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * The URL as it may be shown in logs, run records and the status page: no user, password or
 * query, and `***` for each part of its path that looks like a key (16 or more characters,
 * letters and digits both), as a capability URL carries one (`/api/webhooks/<id>/<token>/github`).
 */
export function forwardLabel(url: URL): string {
  const path = url.pathname.split('/').map((part) => (keyShaped(part) ? '***' : part));
  return `${url.protocol}//${url.host}${path.join('/')}`;
}

/**
 * A URL's user or password as the bytes meant, as curl takes them: each `%XX` is that byte
 * (`%40` is `@`, `%C3%A9` is é in UTF-8), and a `%` that starts no escape is itself.
 */
function percentDecoded(text: string): Buffer {
  const bytes: Buffer[] = [];
  for (const [, escape, other] of text.matchAll(/%([0-9a-fA-F]{2})|([^%]+|%)/g)) {
    bytes.push(escape !== undefined ? Buffer.from([Number.parseInt(escape, 16)]) : Buffer.from(other ?? '', 'utf8'));
  }
  return Buffer.concat(bytes);
}

/**
 * Reads each destination's secret; problems are added to `issues` with their config path.
 * Relays of generic events are signed as Standard Webhooks, so there (`standard`) a secret
 * that is not a `whsec_` key is warned about: it may sign what no receiver accepts.
 */
export async function resolveForwards(raw: readonly RawForward[], baseDir: string, env: Env, where: string, issues: ConfigIssue[], warnings: string[], standard = false): Promise<ForwardTarget[]> {
  const targets: ForwardTarget[] = [];
  for (const [index, entry] of raw.entries()) {
    const at = formatPath([index], where);
    const picked = secretSource(entry.secret_env, entry.secret_file, baseDir);
    if (picked === undefined) continue; // the schema requires one of the two
    const secret = await readSecret(picked.source, env);
    const secretAt = formatPath([`secret_${picked.key}`], at);
    if ('problem' in secret) {
      issues.push({ path: secretAt, message: secret.problem });
      continue;
    }
    // A warning, not an error: a receiver's own key may be bare base64, or shorter, and still sign.
    const notSigning = standard ? signingSecretProblem(secret.value, 'a Standard Webhooks secret, as a relayed generic event is signed') : undefined;
    if (notSigning !== undefined) warnings.push(`${secretAt}: ${notSigning}`);
    const url = new URL(entry.url);
    if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname)) {
      warnings.push(`${formatPath(['url'], at)}: relays deliveries over plain http to ${url.host}; anyone on the way can read them (and a GitLab token); use https`);
    }
    // A user and password in the URL sign in as curl would take them: HTTP Basic.
    let authorization: string | undefined;
    if (url.username !== '' || url.password !== '') {
      authorization = `Basic ${Buffer.concat([percentDecoded(url.username), Buffer.from(':'), percentDecoded(url.password)]).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    targets.push({
      url: url.href,
      ...(authorization !== undefined ? { authorization } : {}),
      label: forwardLabel(url),
      secret: secret.value,
      attempts: entry.attempts,
      backoffMs: parseDuration(entry.backoff) ?? 2_000,
      timeoutMs: parseDuration(entry.timeout) ?? 10_000,
    });
  }
  return targets;
}
