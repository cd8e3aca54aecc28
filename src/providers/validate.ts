import type { IncomingHttpHeaders } from 'node:http';

/** Commit ids: SHA-1 (40) or SHA-256 (64) lowercase hex. */
export const COMMIT_PATTERN = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export function isCommitId(value: unknown): value is string {
  return typeof value === 'string' && COMMIT_PATTERN.test(value);
}

export function isZeroCommit(sha: string): boolean {
  return /^0+$/.test(sha);
}

/** Control characters, space, ~^:?*[\, and the sequences `..` and `@{`, never allowed in a ref. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const REFUSED_IN_REF = /[\u0000-\u0020\u007f~^:?*[\\]|\.\.|@\{/;

/**
 * A full branch or tag ref that `git check-ref-format` accepts. Hostile but legal names
 * (`$(id)`, `;rm`) pass: they are only ever used as data.
 */
export function isValidRef(ref: unknown): ref is string {
  if (typeof ref !== 'string' || ref.length > 1024) return false;
  if (!ref.startsWith('refs/heads/') && !ref.startsWith('refs/tags/')) return false;
  if (ref.endsWith('.') || REFUSED_IN_REF.test(ref)) return false;
  // Every part between slashes: not empty, not `@`, not starting with `.`, not ending with
  // `.lock`. One pass without an array of parts: every push's ref is checked here.
  for (let start = 0; start <= ref.length; ) {
    const slash = ref.indexOf('/', start);
    const end = slash === -1 ? ref.length : slash;
    if (end === start || ref[start] === '.' || (end === start + 1 && ref[start] === '@') || ref.endsWith('.lock', end)) return false;
    start = end + 1;
  }
  return true;
}

/** The named headers of `original` that hold a plain single value, for relaying. */
export function copyHeaders(original: IncomingHttpHeaders, names: readonly string[]): Record<string, string> {
  const copied: Record<string, string> = {};
  for (const name of names) {
    const value = original[name];
    if (typeof value === 'string') copied[name] = value;
  }
  return copied;
}

/** Delivery ids end up in logs and environment variables; anything odd is replaced. */
export function safeDeliveryId(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(value) ? value : undefined;
}

/** Reads a nested property of parsed JSON without trusting its shape. */
export function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current) || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export function stringField(value: unknown, ...path: string[]): string | undefined {
  const found = field(value, ...path);
  return typeof found === 'string' ? found : undefined;
}
