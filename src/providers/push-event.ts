import type { ProviderName } from '../config/types.js';
import { fieldText } from '../jobs/event-fields.js';
import type { HookEvent, PushEvent } from './types.js';
import { isCommitId, isValidRef, isZeroCommit } from './validate.js';

/** The most of a pusher's name kept (for DEPLOYHOOK_PUSHER, the run's record and its log), in UTF-8 bytes. */
const MAX_PUSHER_BYTES = 256;

export interface PushFields {
  provider: ProviderName;
  deliveryId: string;
  repo: string;
  ref: unknown;
  after: unknown;
  before: unknown;
  pusher: string | undefined;
  message?: string | undefined;
}

/** Why a host's test delivery (a ping, "Test connection") queued nothing. */
export const TEST_DELIVERY = 'test delivery received: the hook is set up, nothing to deploy';

/** A delivery of an event the adapter does not deploy; `deployed` names the events it does. */
export function ignoredEvent(event: unknown, deployed: string): HookEvent {
  return { kind: 'ignored', reason: `event ${JSON.stringify(String(event ?? ''))} is not deployed; only ${deployed}` };
}

/** Shared by every adapter: validates a push's ref and commits and builds the PushEvent. */
export function toPushEvent(fields: PushFields): HookEvent {
  const { ref, after, before } = fields;
  if (!isValidRef(ref)) return { kind: 'invalid', reason: 'expected `ref` to be a valid refs/heads/ or refs/tags/ ref' };
  if (!isCommitId(after)) return { kind: 'invalid', reason: 'expected `after` to be a 40 or 64 character hex commit id' };
  if (!isCommitId(before)) return { kind: 'invalid', reason: 'expected `before` to be a 40 or 64 character hex commit id' };
  const isBranch = ref.startsWith('refs/heads/');
  const name = ref.slice(isBranch ? 'refs/heads/'.length : 'refs/tags/'.length);
  if (isZeroCommit(after)) return { kind: 'ignored', reason: `${isBranch ? 'branch' : 'tag'} ${name} was deleted: nothing to deploy` };
  // Fetched, it would land on origin/HEAD, which git keeps for the remote's default branch.
  if (isBranch && name === 'HEAD') return { kind: 'ignored', reason: 'a branch named HEAD is not deployed: git takes origin/HEAD for the remote\'s default branch' };
  return {
    kind: 'push',
    ignored: [],
    pushes: [{
      provider: fields.provider,
      deliveryId: fields.deliveryId,
      repo: fields.repo,
      ref,
      ...(isBranch ? { branch: name } : { tag: name }),
      sha: after,
      before,
      // Free text (Bitbucket's display name): no NUL, which the command's environment cannot hold, and short.
      pusher: fieldText(fields.pusher, MAX_PUSHER_BYTES),
      ...(fields.message !== undefined ? { message: fields.message } : {}),
    }],
  };
}

/**
 * One delivery that updated several refs: its pushes together. Deleted refs are listed as
 * ignored, and so is a malformed entry beside a good one (a branch name deployhook refuses
 * must not cost the others their deploy: Bitbucket Cloud does not resend a delivery answered
 * 400); a delivery with nothing else is invalid.
 */
export function combineEvents(events: readonly HookEvent[]): HookEvent {
  const pushes: PushEvent[] = [];
  const ignored: string[] = [];
  const invalid = events.find((event) => event.kind === 'invalid');
  for (const event of events) {
    if (event.kind === 'invalid') ignored.push(`not deployed: ${event.reason}`);
    else if (event.kind === 'ignored') ignored.push(event.reason);
    else if (event.kind === 'push') {
      pushes.push(...event.pushes);
      ignored.push(...event.ignored);
    }
  }
  if (pushes.length === 0) return invalid ?? { kind: 'ignored', reason: ignored.length > 0 ? ignored.join('; ') : 'the delivery updated no ref' };
  return { kind: 'push', pushes, ignored };
}
