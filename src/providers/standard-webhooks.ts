import { createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { digestsEqual } from './constant-time.js';

/**
 * Standard Webhooks 1.0 (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp`
 * (Unix seconds) and `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>`
 * over `{id}.{timestamp}.{raw body}`. The key is the secret without its `whsec_` prefix,
 * base64-decoded. GitLab's signed webhooks and deployhook's generic events use it.
 */

/** How far a timestamp may be from the clock, either way, unless configured otherwise. */
export const DEFAULT_TOLERANCE_MS = 5 * 60_000;

/** The clock and the accepted window, injected so that tests and reloads can set them. */
export interface SignatureClock {
  now: () => Date;
  toleranceMs: () => number;
}

export const systemClock: SignatureClock = { now: () => new Date(), toleranceMs: () => DEFAULT_TOLERANCE_MS };

/** The signature headers of a delivery, shape-checked and fresh; not yet verified. */
export interface SignedHeaders {
  id: string;
  /** As sent: the signed content uses these exact characters. */
  timestamp: string;
  /** The decoded `v1` signatures (32 bytes each); other versions are left out. */
  signatures: readonly Buffer[];
}

export type SignatureRead = { kind: 'absent' } | { kind: 'invalid'; reason: string } | { kind: 'ok'; signed: SignedHeaders };

const PREFIX = 'whsec_';
const ID = /^[\x20-\x7e]{1,256}$/;
const TIMESTAMP = /^\d{1,12}$/;
const ENTRY = /^([a-z0-9]{1,8}),(\S+)$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const MAX_SIGNATURE_HEADER = 4096;

/** Strict base64: only the canonical encoding of its bytes passes. */
function decodeBase64(text: string): Buffer | undefined {
  if (!BASE64.test(text) || text.length % 4 !== 0) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** The HMAC key of a secret: `whsec_` stripped, base64-decoded. Undefined when nothing is left. */
export function signingKey(secret: string): Buffer | undefined {
  const encoded = secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret;
  const key = Buffer.from(encoded, 'base64');
  return key.length > 0 ? key : undefined;
}

/** Whether `secret` is `whsec_` and the canonical base64 of at least `minBytes` bytes. */
export function isSigningSecret(secret: string, minBytes = 24): boolean {
  if (!secret.startsWith(PREFIX)) return false;
  const key = decodeBase64(secret.slice(PREFIX.length));
  return key !== undefined && key.length >= minBytes;
}

function one(headers: IncomingHttpHeaders, name: string): string | undefined | null {
  const value = headers[name];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : null;
}

/**
 * Reads the three headers before the body is: `absent` when there is no `webhook-signature`,
 * `invalid` when any is missing, malformed, or the timestamp is outside the window.
 */
export function readSignatureHeaders(headers: IncomingHttpHeaders, clock: SignatureClock): SignatureRead {
  const signature = one(headers, 'webhook-signature');
  if (signature === undefined) return { kind: 'absent' };
  const id = one(headers, 'webhook-id');
  const timestamp = one(headers, 'webhook-timestamp');
  if (signature === null || signature === '' || signature.length > MAX_SIGNATURE_HEADER) return { kind: 'invalid', reason: 'malformed webhook-signature header' };
  if (id === undefined || timestamp === undefined) return { kind: 'invalid', reason: 'webhook-signature without webhook-id and webhook-timestamp' };
  if (id === null || !ID.test(id)) return { kind: 'invalid', reason: 'malformed webhook-id header' };
  if (timestamp === null || !TIMESTAMP.test(timestamp)) return { kind: 'invalid', reason: 'malformed webhook-timestamp header' };
  const skewMs = Math.abs(clock.now().getTime() - Number(timestamp) * 1000);
  if (skewMs > clock.toleranceMs()) return { kind: 'invalid', reason: 'webhook-timestamp outside the accepted window (timestamp_tolerance)' };

  const signatures: Buffer[] = [];
  for (const entry of signature.split(' ')) {
    if (entry === '') continue;
    const match = ENTRY.exec(entry);
    if (!match) return { kind: 'invalid', reason: 'malformed webhook-signature header' };
    if (match[1] !== 'v1') continue;
    const digest = decodeBase64(match[2] ?? '');
    if (digest?.length === 32) signatures.push(digest);
  }
  if (signatures.length === 0) return { kind: 'invalid', reason: 'no v1 signature in webhook-signature header' };
  return { kind: 'ok', signed: { id, timestamp, signatures } };
}

function digest(key: Buffer, id: string, timestamp: string, body: Buffer): Buffer {
  return createHmac('sha256', key).update(`${id}.${timestamp}.`, 'utf8').update(body).digest();
}

/** Whether one of the listed signatures is the HMAC of the raw body under `secret` (each compared in constant time). */
export function verifySignature(secret: string, body: Buffer, signed: SignedHeaders): boolean {
  const key = signingKey(secret);
  if (!key) return false;
  const expected = digest(key, signed.id, signed.timestamp, body);
  return signed.signatures.some((candidate) => digestsEqual(expected, candidate));
}

/** `v1,<base64>`: the signature of `body` as sent with `id` at `timestamp` (Unix seconds). */
export function sign(secret: string, id: string, timestamp: number, body: Buffer | string): string {
  const key = signingKey(secret) ?? Buffer.alloc(0);
  return `v1,${digest(key, id, String(timestamp), Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')).toString('base64')}`;
}

/** The three headers that sign `body` at `now`, for relaying and for `deployhook send`. */
export function signatureHeaders(secret: string, id: string, body: Buffer | string, now: Date): Record<string, string> {
  const timestamp = Math.floor(now.getTime() / 1000);
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': sign(secret, id, timestamp, body) };
}

/** Reads and verifies in one step: whether the delivery is signed, fresh and verifies against one of `secrets`. */
export function verifyDelivery(headers: IncomingHttpHeaders, body: Buffer, secrets: readonly string[], clock: SignatureClock): { ok: true } | { ok: false; reason: string } {
  const read = readSignatureHeaders(headers, clock);
  if (read.kind === 'absent') return { ok: false, reason: 'missing webhook-signature header' };
  if (read.kind === 'invalid') return { ok: false, reason: read.reason };
  return secrets.some((secret) => verifySignature(secret, body, read.signed)) ? { ok: true } : { ok: false, reason: 'no signature matches' };
}
