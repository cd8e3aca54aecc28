import { randomUUID } from 'node:crypto';
import { forgejoProvider, giteaProvider } from '../providers/gitea.js';
import { githubProvider } from '../providers/github.js';
import { signatureHeaders } from '../providers/standard-webhooks.js';
import type { JobConfig } from '../config/types.js';
import { bitbucketDelivery } from './bitbucket-delivery.js';

export interface SignedDelivery {
  body: string;
  headers: Record<string, string>;
}

const ZERO = '0'.repeat(40);
const SENDER = 'deployhook-send';

function githubPayload(job: JobConfig, ref: string, sha: string): object {
  const [owner = '', name = ''] = job.repo.split('/');
  return {
    ref,
    before: ZERO,
    after: sha,
    created: false,
    deleted: false,
    forced: false,
    compare: '',
    commits: [],
    head_commit: { id: sha, message: 'sent by deployhook send', timestamp: new Date().toISOString() },
    repository: { name, full_name: job.repo, owner: { name: owner, login: owner } },
    pusher: { name: SENDER, login: SENDER, email: null },
    sender: { login: SENDER },
  };
}

function gitlabPayload(job: JobConfig, ref: string, sha: string): object {
  const name = job.repo.split('/').at(-1) ?? '';
  return {
    object_kind: 'push',
    event_name: 'push',
    before: ZERO,
    after: sha,
    ref,
    checkout_sha: sha,
    user_name: SENDER,
    user_username: SENDER,
    project: { name, path_with_namespace: job.repo },
    commits: [],
    total_commits_count: 0,
  };
}

/**
 * A push delivery for `job` exactly as its Git host would send it: the host's event and
 * delivery headers and its signature or token, made with the job's own secret.
 */
export function buildPushDelivery(job: JobConfig, ref: string, sha: string): SignedDelivery {
  const secret = job.secrets[0] ?? '';
  const id = randomUUID();
  if (job.provider === 'bitbucket' || job.provider === 'bitbucket-server') return bitbucketDelivery(job, ref, sha, id);
  // Signed by the adapter's own relay headers, as the host signs, from the host's event and delivery headers.
  if (job.provider === 'github') {
    const body = JSON.stringify(githubPayload(job, ref, sha));
    const original = { 'x-github-event': 'push', 'x-github-delivery': id, 'x-github-hook-id': '0' };
    return { body, headers: { 'user-agent': 'GitHub-Hookshot/deployhook-send', ...githubProvider.relayHeaders(Buffer.from(body), secret, original, new Date()) } };
  }
  if (job.provider === 'gitea' || job.provider === 'forgejo') {
    const body = JSON.stringify(githubPayload(job, ref, sha));
    const prefix = job.provider === 'gitea' ? 'x-gitea' : 'x-forgejo';
    const original = { [`${prefix}-event`]: 'push', [`${prefix}-delivery`]: id };
    const adapter = job.provider === 'gitea' ? giteaProvider : forgejoProvider;
    return { body, headers: { 'user-agent': 'deployhook-send', ...adapter.relayHeaders(Buffer.from(body), secret, original, new Date()) } };
  }
  const body = JSON.stringify(gitlabPayload(job, ref, sha));
  // With signing tokens GitLab signs Standard Webhooks style; webhook-id is its Idempotency-Key.
  const signingToken = job.signingTokens?.[0];
  const credential = signingToken !== undefined ? { 'idempotency-key': id, ...signatureHeaders(signingToken, id, body, new Date()) } : { 'x-gitlab-token': secret };
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitLab/deployhook-send',
      'x-gitlab-event': 'Push Hook',
      'x-gitlab-event-uuid': id,
      ...credential,
    },
  };
}
