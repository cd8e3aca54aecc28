import type { IncomingHttpHeaders } from 'node:http';
import type { ProviderName } from '../config/types.js';
import { hmacSha256 } from './constant-time.js';
import { hmacMatchesJob } from './hub-signature.js';
import { ignoredEvent, toPushEvent } from './push-event.js';
import type { ProviderAdapter } from './types.js';
import { copyHeaders, safeDeliveryId, stringField } from './validate.js';

const SIGNATURE = /^[0-9a-f]{64}$/;

/**
 * Gitea and its fork Forgejo: a hex HMAC-SHA256 with no prefix, in `X-Gitea-Signature` or
 * `X-Forgejo-Signature`. They send the header empty when the hook has no secret: that is 401.
 * The HMAC covers the JSON payload, also when it is delivered form-encoded.
 */
function giteaLike(name: Extract<ProviderName, 'gitea' | 'forgejo'>): ProviderAdapter<Buffer> {
  const prefix = name === 'gitea' ? 'x-gitea' : 'x-forgejo';
  const header = (headers: IncomingHttpHeaders, suffix: string) => headers[`${prefix}-${suffix}`] ?? headers[`x-gitea-${suffix}`];
  return {
    name,
    formEncoded: true,

    readCredential(headers) {
      const value = header(headers, 'signature');
      if (value === undefined || value === '') return { ok: false, reason: `missing ${prefix}-signature header` };
      if (typeof value !== 'string' || !SIGNATURE.test(value)) return { ok: false, reason: `malformed ${prefix}-signature header` };
      return { ok: true, credential: Buffer.from(value, 'hex') };
    },

    signedBytes(raw, payloadJson, form) {
      return form ? Buffer.from(payloadJson, 'utf8') : raw;
    },

    verify(body, digest, job) {
      return hmacMatchesJob(body, digest, job);
    },

    repositoryOf(payload) {
      return stringField(payload, 'repository', 'full_name');
    },

    deliveryId(headers) {
      return safeDeliveryId(header(headers, 'delivery'));
    },

    dedupKey(headers) {
      const delivery = this.deliveryId(headers);
      return delivery === undefined ? undefined : `${name}:${delivery}`;
    },

    relayHeaders(body, secret, original) {
      return {
        'content-type': 'application/json',
        ...copyHeaders(original, [`${prefix}-event`, `${prefix}-delivery`]),
        [`${prefix}-signature`]: hmacSha256(secret, body).toString('hex'),
      };
    },

    interpret(headers, payload, deliveryId) {
      const event = header(headers, 'event');
      if (event !== 'push') return ignoredEvent(event, 'push events are');
      return toPushEvent({
        provider: name,
        deliveryId,
        repo: this.repositoryOf(payload) ?? '',
        ref: stringField(payload, 'ref'),
        after: stringField(payload, 'after'),
        before: stringField(payload, 'before'),
        pusher: stringField(payload, 'pusher', 'login') ?? stringField(payload, 'pusher', 'username'),
        message: stringField(payload, 'head_commit', 'message'),
      });
    },
  };
}

export const giteaProvider = giteaLike('gitea');
export const forgejoProvider = giteaLike('forgejo');
