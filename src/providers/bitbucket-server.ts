import type { IncomingHttpHeaders } from 'node:http';
import { hubSignature, hmacMatchesJob, readHubSignature } from './hub-signature.js';
import { combineEvents, ignoredEvent, toPushEvent } from './push-event.js';
import type { HookEvent, ProviderAdapter } from './types.js';
import { copyHeaders, field, isCommitId, isValidRef, safeDeliveryId, stringField } from './validate.js';

/** The commit message of `sha`, when the payload lists that commit (newer versions do). */
function messageOf(payload: unknown, sha: string): string | undefined {
  const listed = field(payload, 'commits');
  const commits = [...(Array.isArray(listed) ? listed : []), field(payload, 'toCommit')];
  return stringField(commits.find((commit) => stringField(commit, 'id') === sha), 'message');
}

/**
 * One entry of `changes`: `ref.id` is the full ref, `type` ADD, UPDATE or DELETE, `fromHash`
 * all zeros for a new ref. For an annotated tag `toHash` is the tag object; the run checks out
 * the commit it points to.
 */
function changeEvent(change: unknown, at: string, payload: unknown, repo: string, pusher: string | undefined, deliveryId: string): HookEvent {
  const ref = stringField(change, 'ref', 'id') ?? stringField(change, 'refId');
  if (!isValidRef(ref)) return { kind: 'invalid', reason: `${at}.ref.id: expected a valid refs/heads/ or refs/tags/ ref` };
  const what = ref.startsWith('refs/heads/') ? `branch ${ref.slice('refs/heads/'.length)}` : `tag ${ref.slice('refs/tags/'.length)}`;
  if (stringField(change, 'type') === 'DELETE') return { kind: 'ignored', reason: `${what} was deleted: nothing to deploy` };
  const after = stringField(change, 'toHash');
  const before = stringField(change, 'fromHash');
  if (!isCommitId(after)) return { kind: 'invalid', reason: `${at}.toHash: expected a 40 or 64 character hex commit id` };
  if (!isCommitId(before)) return { kind: 'invalid', reason: `${at}.fromHash: expected a 40 or 64 character hex commit id` };
  return toPushEvent({ provider: 'bitbucket-server', deliveryId, repo, ref, after, before, pusher, message: messageOf(payload, after) });
}

/**
 * Bitbucket Data Center (formerly Server): `X-Event-Key: repo:refs_changed`, signed in
 * `X-Hub-Signature`. The repository is `PROJECTKEY/repo-slug`. "Test connection" sends
 * `diagnostics:ping`, which names no repository: it is a probe.
 */
export const bitbucketServerProvider: ProviderAdapter<Buffer> = {
  name: 'bitbucket-server',
  formEncoded: false,

  readCredential: (headers) => readHubSignature(headers, 'x-hub-signature'),

  verify: hmacMatchesJob,

  repositoryOf(payload) {
    const project = stringField(payload, 'repository', 'project', 'key');
    const slug = stringField(payload, 'repository', 'slug');
    return project === undefined || slug === undefined ? undefined : `${project}/${slug}`;
  },

  isProbe(headers: IncomingHttpHeaders) {
    return headers['x-event-key'] === 'diagnostics:ping';
  },

  deliveryId(headers) {
    return safeDeliveryId(headers['x-request-id']);
  },

  dedupKey(headers) {
    const request = safeDeliveryId(headers['x-request-id']);
    return request === undefined ? undefined : `bitbucket-server:${request}`;
  },

  relayHeaders(body, secret, original) {
    return {
      'content-type': 'application/json',
      ...copyHeaders(original, ['x-event-key', 'x-request-id']),
      'x-hub-signature': hubSignature(secret, body),
    };
  },

  interpret(headers, payload, deliveryId) {
    const event = headers['x-event-key'];
    if (event !== 'repo:refs_changed') return ignoredEvent(event, 'repo:refs_changed is');
    const changes = field(payload, 'changes');
    if (!Array.isArray(changes)) return { kind: 'invalid', reason: 'expected `changes` to be a list of ref changes' };
    const repo = this.repositoryOf(payload) ?? '';
    const pusher = stringField(payload, 'actor', 'name') ?? stringField(payload, 'actor', 'displayName');
    return combineEvents(changes.map((change: unknown, index) => changeEvent(change, `changes[${index}]`, payload, repo, pusher, deliveryId)));
  },
};
