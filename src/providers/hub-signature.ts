import type { IncomingHttpHeaders } from 'node:http';
import type { JobConfig } from '../config/types.js';
import { hmacMatches, hmacSha256 } from './constant-time.js';
import type { CredentialCheck } from './types.js';

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;

/**
 * `sha256=<hex HMAC-SHA256 of the raw body>` in the named header: GitHub's
 * `X-Hub-Signature-256`, and Bitbucket Cloud's and Data Center's `X-Hub-Signature` (the header
 * GitHub uses for SHA-1, with SHA-256 in it; a `sha1=` value is malformed here).
 */
export function readHubSignature(headers: IncomingHttpHeaders, name: 'x-hub-signature' | 'x-hub-signature-256'): CredentialCheck<Buffer> {
  const shown = name === 'x-hub-signature' ? 'X-Hub-Signature' : 'X-Hub-Signature-256';
  const header = headers[name];
  if (header === undefined || header === '') return { ok: false, reason: `missing ${shown} header` };
  // Node joins repeated headers with ", ", so a duplicated header fails the pattern.
  const match = typeof header === 'string' ? SIGNATURE.exec(header) : null;
  if (!match?.[1]) return { ok: false, reason: `malformed ${shown} header: expected sha256=<64 hex digits>` };
  return { ok: true, credential: Buffer.from(match[1], 'hex') };
}

/** Whether `digest` is the HMAC-SHA256 of `body` under one of the job's secrets (constant time for each). */
export function hmacMatchesJob(body: Buffer, digest: Buffer, job: JobConfig): boolean {
  return job.secrets.some((secret) => hmacMatches(secret, body, digest));
}

/** The `sha256=<hex>` value these hosts send for `body` under `secret`. */
export function hubSignature(secret: string, body: Buffer): string {
  return `sha256=${hmacSha256(secret, body).toString('hex')}`;
}
