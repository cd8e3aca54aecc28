import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** HMAC-SHA256 over the raw bytes as received, never over a re-encoded string. */
export function hmacSha256(secret: string, body: Buffer): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

/** Whether `digest` is the HMAC-SHA256 of `body` under `secret`, compared in constant time. */
export function hmacMatches(secret: string, body: Buffer, digest: Buffer): boolean {
  return digestsEqual(hmacSha256(secret, body), digest);
}

/** Compares two digests in constant time; different lengths are unequal. */
export function digestsEqual(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

/**
 * Compares two secrets in constant time without revealing their lengths: both sides
 * are hashed to 32 bytes first.
 */
export function secretsEqual(expected: string, received: string): boolean {
  const a = createHash('sha256').update(expected, 'utf8').digest();
  const b = createHash('sha256').update(received, 'utf8').digest();
  return timingSafeEqual(a, b);
}
