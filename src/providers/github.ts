import type { IncomingHttpHeaders } from 'node:http';
import { hmacMatchesJob, hubSignature, readHubSignature } from './hub-signature.js';
import { ignoredEvent, TEST_DELIVERY, toPushEvent } from './push-event.js';
import type { ProviderAdapter } from './types.js';
import { copyHeaders, safeDeliveryId, stringField } from './validate.js';

/** GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. */
export const githubProvider: ProviderAdapter<Buffer> = {
  name: 'github',
  formEncoded: true,

  readCredential(headers: IncomingHttpHeaders) {
    return readHubSignature(headers, 'x-hub-signature-256');
  },

  verify(body, digest, job) {
    return hmacMatchesJob(body, digest, job);
  },

  // Sent when a hook is made; an organisation's names no repository. A repository's ping is
  // verified against that repository's jobs, as its pushes are (see interpret).
  isProbe(headers, payload) {
    return headers['x-github-event'] === 'ping' && this.repositoryOf(payload) === undefined;
  },

  repositoryOf(payload) {
    return stringField(payload, 'repository', 'full_name');
  },

  deliveryId(headers) {
    return safeDeliveryId(headers['x-github-delivery']);
  },

  dedupKey(headers) {
    const delivery = safeDeliveryId(headers['x-github-delivery']);
    // The same delivery id reaches every hook of a repository; the hook id tells them apart.
    // Hook ids are numeric; anything else is left out, so two keys can never run together.
    const hook = headers['x-github-hook-id'];
    return delivery === undefined ? undefined : `github:${typeof hook === 'string' && /^\d{1,20}$/.test(hook) ? hook : ''}:${delivery}`;
  },

  relayHeaders(body, secret, original) {
    return {
      'content-type': 'application/json',
      ...copyHeaders(original, ['x-github-event', 'x-github-delivery', 'x-github-hook-id']),
      'x-hub-signature-256': hubSignature(secret, body),
    };
  },

  interpret(headers, payload, deliveryId) {
    const event = headers['x-github-event'];
    if (event === 'ping') return { kind: 'ignored', reason: TEST_DELIVERY };
    if (event !== 'push') return ignoredEvent(event, 'push events are');
    return toPushEvent({
      provider: 'github',
      deliveryId,
      repo: this.repositoryOf(payload) ?? '',
      ref: stringField(payload, 'ref'),
      after: stringField(payload, 'after'),
      before: stringField(payload, 'before'),
      pusher: stringField(payload, 'pusher', 'name') ?? stringField(payload, 'sender', 'login'),
      message: stringField(payload, 'head_commit', 'message'),
    });
  },
};
