import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { readSignatureHeaders, signatureHeaders, verifySignature, type SignatureClock, type SignedHeaders } from './standard-webhooks.js';
import type { ProviderAdapter } from './types.js';
import { safeDeliveryId } from './validate.js';

/** Sources as the URL names them: `/hooks/generic/<source>`. */
export const SOURCE_PATTERN = /^[A-Za-z0-9._-]{1,100}$/;

/** The `webhook-id` as sent: Standard Webhooks allows up to 256 printable characters. */
function webhookId(headers: IncomingHttpHeaders): string | undefined {
  const id = headers['webhook-id'];
  return typeof id === 'string' && /^[\x20-\x7e]{1,256}$/.test(id) ? id : undefined;
}

/**
 * Generic signed events: `POST /hooks/generic/<source>`, signed with Standard Webhooks under
 * the job's `whsec_` secret. For events that are not pushes (an Alertmanager alert, a CI
 * pipeline's end); each job's `when` decides whether it runs. Redeliveries of a `webhook-id`
 * are recognised per source.
 */
export function createGenericProvider(clock: SignatureClock): ProviderAdapter<SignedHeaders> {
  return {
    name: 'generic',
    formEncoded: false,
    sourceInPath: true,

    readCredential(headers) {
      const read = readSignatureHeaders(headers, clock);
      if (read.kind === 'absent') return { ok: false, reason: 'missing webhook-signature header' };
      if (read.kind === 'invalid') return { ok: false, reason: read.reason };
      return { ok: true, credential: read.signed };
    },

    verify(body, signed, job) {
      return job.secrets.some((secret) => verifySignature(secret, body, signed));
    },

    /** Events name no repository: the URL's source stands in for it. */
    repositoryOf() {
      return undefined;
    },

    deliveryId(headers) {
      return safeDeliveryId(headers['webhook-id']);
    },

    dedupKey(headers, source) {
      const id = webhookId(headers);
      return id === undefined || source === undefined ? undefined : `generic:${source.toLowerCase()}:${id}`;
    },

    relayHeaders(body, secret, original, now) {
      return { 'content-type': 'application/json', ...signatureHeaders(secret, webhookId(original) ?? randomUUID(), body, now) };
    },

    interpret(_headers, payload, deliveryId, source) {
      if (source === undefined || !SOURCE_PATTERN.test(source)) return { kind: 'invalid', reason: 'expected the URL to name a source: /hooks/generic/<source>' };
      return { kind: 'event', event: { provider: 'generic', deliveryId, source, payload } };
    },
  };
}
