import { createHmac, randomBytes } from 'node:crypto';

/** A fresh Standard Webhooks secret, as GitLab makes its signing tokens: whsec_ and 32 random bytes. */
export function newSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

let deliveries = 0;

/**
 * The three Standard Webhooks headers for `body`, computed here from the specification
 * (not with deployhook's code): v1 and the base64 HMAC-SHA256 of `id.timestamp.body` under the
 * base64-decoded secret without its whsec_ prefix.
 */
export function standardSignature(secret: string, body: string, options: { id?: string; at?: Date } = {}): Record<string, string> {
  deliveries += 1;
  const id = options.id ?? `msg_test${String(deliveries).padStart(8, '0')}`;
  const timestamp = String(Math.floor((options.at ?? new Date()).getTime() / 1000));
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
}
