import type { IncomingHttpHeaders } from 'node:http';
import { secretsEqual } from './constant-time.js';
import { toPushEvent } from './push-event.js';
import type { ProviderAdapter } from './types.js';
import { copyHeaders, field, safeDeliveryId, stringField } from './validate.js';

const PUSH_EVENTS = new Set(['Push Hook', 'Tag Push Hook']);

/** GitLab lists the pushed commits (at most 20); the head is the one whose id is `after`. */
function headCommitMessage(payload: unknown): string | undefined {
  const after = stringField(payload, 'after');
  const commits = field(payload, 'commits');
  if (!Array.isArray(commits)) return undefined;
  const head = commits.find((commit) => stringField(commit, 'id') === after);
  return stringField(head, 'message');
}

/** GitLab: the secret token is sent as is in `X-Gitlab-Token`. */
export const gitlabProvider: ProviderAdapter<string> = {
  name: 'gitlab',
  formEncoded: false,

  readCredential(headers: IncomingHttpHeaders) {
    const token = headers['x-gitlab-token'];
    if (token === undefined || token === '') return { ok: false, reason: 'missing X-Gitlab-Token header' };
    if (typeof token !== 'string' || token.length > 1024) return { ok: false, reason: 'malformed X-Gitlab-Token header' };
    return { ok: true, credential: token };
  },

  verify(_body, token, job) {
    return job.secrets.some((secret) => secretsEqual(secret, token));
  },

  repositoryOf(payload) {
    return stringField(payload, 'project', 'path_with_namespace');
  },

  deliveryId(headers) {
    return safeDeliveryId(headers['idempotency-key']) ?? safeDeliveryId(headers['x-gitlab-event-uuid']);
  },

  dedupKey(headers) {
    const id = this.deliveryId(headers);
    return id === undefined ? undefined : `gitlab:${id}`;
  },

  relayHeaders(_body, secret, original) {
    return {
      'content-type': 'application/json',
      ...copyHeaders(original, ['x-gitlab-event', 'x-gitlab-event-uuid', 'idempotency-key']),
      'x-gitlab-token': secret,
    };
  },

  interpret(headers, payload, deliveryId) {
    const event = headers['x-gitlab-event'];
    if (typeof event !== 'string' || !PUSH_EVENTS.has(event)) {
      return { kind: 'ignored', reason: `event ${JSON.stringify(String(event ?? ''))} is not deployed; only Push Hook and Tag Push Hook are` };
    }
    return toPushEvent({
      provider: 'gitlab',
      deliveryId,
      repo: this.repositoryOf(payload) ?? '',
      ref: stringField(payload, 'ref'),
      after: stringField(payload, 'after'),
      before: stringField(payload, 'before'),
      pusher: stringField(payload, 'user_username') ?? stringField(payload, 'user_name'),
      message: headCommitMessage(payload),
    });
  },
};
