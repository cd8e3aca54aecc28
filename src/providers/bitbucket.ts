import type { IncomingHttpHeaders } from 'node:http';
import { hubSignature, hmacMatchesJob, readHubSignature } from './hub-signature.js';
import { combineEvents, ignoredEvent, toPushEvent } from './push-event.js';
import type { HookEvent, ProviderAdapter } from './types.js';
import { copyHeaders, field, isCommitId, isValidRef, safeDeliveryId, stringField } from './validate.js';

const ZERO = '0'.repeat(40);
const REF_PREFIX: Readonly<Record<string, string>> = { branch: 'refs/heads/', tag: 'refs/tags/' };

/** Bitbucket writes UUIDs in braces in payloads; the request id is taken with or without them. */
function requestUuid(headers: IncomingHttpHeaders): string | undefined {
  const value = headers['x-request-uuid'];
  return safeDeliveryId(typeof value === 'string' ? value.replace(/^\{(.*)\}$/, '$1') : value);
}

/**
 * One entry of `push.changes`: one ref update. `new` is null when the ref was deleted, `old`
 * null when it was created. For a tag, `new.target` is the commit (an annotated tag comes
 * peeled); the run still checks out the tag's commit as fetched.
 */
function changeEvent(change: unknown, at: string, repo: string, pusher: string | undefined, deliveryId: string): HookEvent {
  const next = field(change, 'new');
  const old = field(change, 'old');
  if (next === null) {
    const type = stringField(old, 'type');
    const name = stringField(old, 'name');
    if (type === undefined || name === undefined) return { kind: 'invalid', reason: `${at}: expected \`old.type\` and \`old.name\` for a deleted ref` };
    return { kind: 'ignored', reason: `${type} ${name} was deleted: nothing to deploy` };
  }
  const type = stringField(next, 'type');
  if (type === undefined) return { kind: 'invalid', reason: `${at}.new.type: expected "branch" or "tag"` };
  const prefix = REF_PREFIX[type];
  if (prefix === undefined) return { kind: 'ignored', reason: `${at}: a ${JSON.stringify(type)} is not deployed; only branches and tags are` };
  const ref = `${prefix}${stringField(next, 'name') ?? ''}`;
  const after = stringField(next, 'target', 'hash');
  const before = old === null || old === undefined ? ZERO : stringField(old, 'target', 'hash');
  if (!isValidRef(ref)) return { kind: 'invalid', reason: `${at}.new.name: expected a valid ${type} name` };
  if (!isCommitId(after)) return { kind: 'invalid', reason: `${at}.new.target.hash: expected a 40 or 64 character hex commit id` };
  if (!isCommitId(before)) return { kind: 'invalid', reason: `${at}.old.target.hash: expected a 40 or 64 character hex commit id` };
  return toPushEvent({ provider: 'bitbucket', deliveryId, repo, ref, after, before, pusher, message: stringField(next, 'target', 'message') });
}

/**
 * Bitbucket Cloud: `X-Event-Key: repo:push`, signed in `X-Hub-Signature`. One delivery lists
 * every ref the push updated in `push.changes`; each becomes its own push. A retry is another
 * attempt of the same request (`X-Attempt-Number` grows), so `X-Request-UUID` identifies it.
 */
export const bitbucketProvider: ProviderAdapter<Buffer> = {
  name: 'bitbucket',
  formEncoded: false,

  readCredential: (headers) => readHubSignature(headers, 'x-hub-signature'),

  verify: hmacMatchesJob,

  repositoryOf(payload) {
    return stringField(payload, 'repository', 'full_name');
  },

  deliveryId: requestUuid,

  dedupKey(headers) {
    const request = requestUuid(headers);
    return request === undefined ? undefined : `bitbucket:${request}`;
  },

  relayHeaders(body, secret, original) {
    return {
      'content-type': 'application/json',
      ...copyHeaders(original, ['x-event-key', 'x-request-uuid']),
      'x-hub-signature': hubSignature(secret, body),
    };
  },

  interpret(headers, payload, deliveryId) {
    const event = headers['x-event-key'];
    if (event !== 'repo:push') return ignoredEvent(event, 'repo:push is');
    const changes = field(payload, 'push', 'changes');
    if (!Array.isArray(changes)) return { kind: 'invalid', reason: 'expected `push.changes` to be a list of ref changes' };
    const repo = this.repositoryOf(payload) ?? '';
    const pusher = stringField(payload, 'actor', 'nickname') ?? stringField(payload, 'actor', 'display_name');
    return combineEvents(changes.map((change: unknown, index) => changeEvent(change, `push.changes[${index}]`, repo, pusher, deliveryId)));
  },
};
