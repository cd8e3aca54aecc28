import { createHash, randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { secretsEqual } from './constant-time.js';
import { ignoredEvent, toPushEvent } from './push-event.js';
import { readSignatureHeaders, signatureHeaders, verifySignature, type SignatureClock, type SignedHeaders } from './standard-webhooks.js';
import type { ProviderAdapter } from './types.js';
import { copyHeaders, field, safeDeliveryId, stringField } from './validate.js';

const PUSH_EVENTS = new Set(['Push Hook', 'Tag Push Hook']);

/** What a GitLab delivery presents: its secret token, its Standard Webhooks signature, or both. */
export interface GitlabCredential {
  token?: string;
  signature?: SignedHeaders;
}

/** GitLab lists the pushed commits (at most 20); the head is the one whose id is `after`. */
function headCommitMessage(payload: unknown): string | undefined {
  const after = stringField(payload, 'after');
  const commits = field(payload, 'commits');
  if (!Array.isArray(commits)) return undefined;
  const head = commits.find((commit) => stringField(commit, 'id') === after);
  return stringField(head, 'message');
}

/**
 * GitLab: the secret token as is in `X-Gitlab-Token`, or, with a signing token, a Standard
 * Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`). A job with
 * signing tokens accepts only a valid, fresh signature and never looks at the token; a job
 * with a secret token only at the token. A signature that is there but malformed or stale
 * fails the delivery for every job.
 */
export function createGitlabProvider(clock: SignatureClock): ProviderAdapter<GitlabCredential> {
  return {
    name: 'gitlab',
    formEncoded: false,

    readCredential(headers: IncomingHttpHeaders) {
      const signature = readSignatureHeaders(headers, clock);
      if (signature.kind === 'invalid') return { ok: false, reason: signature.reason };
      const token = headers['x-gitlab-token'];
      if (token !== undefined && token !== '' && (typeof token !== 'string' || token.length > 1024)) return { ok: false, reason: 'malformed X-Gitlab-Token header' };
      const credential: GitlabCredential = {};
      if (typeof token === 'string' && token !== '') credential.token = token;
      if (signature.kind === 'ok') credential.signature = signature.signed;
      if (credential.token === undefined && credential.signature === undefined) return { ok: false, reason: 'missing X-Gitlab-Token and webhook-signature headers' };
      return { ok: true, credential };
    },

    verify(body, credential, job) {
      if (job.signingTokens !== undefined) {
        const { signature } = credential;
        return signature !== undefined && job.signingTokens.some((token) => verifySignature(token, body, signature));
      }
      const { token } = credential;
      return token !== undefined && job.secrets.some((secret) => secretsEqual(secret, token));
    },

    repositoryOf(payload) {
      return stringField(payload, 'project', 'path_with_namespace');
    },

    // webhook-id first: a signing token's signature covers it, so a replay cannot change it
    // (GitLab sends the same value as Idempotency-Key, which nothing signs).
    deliveryId(headers) {
      return safeDeliveryId(headers['webhook-id']) ?? safeDeliveryId(headers['idempotency-key']) ?? safeDeliveryId(headers['x-gitlab-event-uuid']);
    },

    // webhook-id and Idempotency-Key are each hook's own; X-Gitlab-Event-UUID, all that GitLab
    // before 17.4 sends, is shared by every hook the same push fires (a group's and a project's),
    // so there the hook's token (hashed) tells them apart, whatever the jobs are after a reload.
    dedupKey(headers) {
      const hookId = safeDeliveryId(headers['webhook-id']) ?? safeDeliveryId(headers['idempotency-key']);
      if (hookId !== undefined) return `gitlab:${hookId}`;
      const eventId = safeDeliveryId(headers['x-gitlab-event-uuid']);
      if (eventId === undefined) return undefined;
      const token = headers['x-gitlab-token'];
      return typeof token === 'string' ? `gitlab:${eventId}:${createHash('sha256').update(token).digest('hex').slice(0, 16)}` : `gitlab:${eventId}`;
    },

    /** A `whsec_` secret signs as GitLab does with a signing token (same webhook-id, fresh timestamp); any other is sent as the token. */
    relayHeaders(body, secret, original, now) {
      const copied = copyHeaders(original, ['x-gitlab-event', 'x-gitlab-event-uuid', 'idempotency-key']);
      if (!secret.startsWith('whsec_')) return { 'content-type': 'application/json', ...copied, 'x-gitlab-token': secret };
      const id = copyHeaders(original, ['webhook-id'])['webhook-id'] ?? copied['idempotency-key'] ?? randomUUID();
      return { 'content-type': 'application/json', ...copied, ...signatureHeaders(secret, id, body, now) };
    },

    interpret(headers, payload, deliveryId) {
      const event = headers['x-gitlab-event'];
      if (typeof event !== 'string' || !PUSH_EVENTS.has(event)) {
        return ignoredEvent(event, 'Push Hook and Tag Push Hook are');
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
}
