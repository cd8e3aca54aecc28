const MASK = Buffer.from('***');
/**
 * Masks the secrets in one buffer. Every byte covered by an occurrence of any secret is
 * hidden: overlapping or nested occurrences become a single `***`, so no part of a secret
 * shows even when secrets overlap. The first `alreadyMasked` bytes of `data` belong to a
 * mask written by the previous call. Only occurrences starting before `limit` are looked
 * at; the bytes from `limit` on are returned as `rest` for the next call, with `masked`
 * telling how many of them belong to a mask already written.
 */
function maskBuffer(data: Buffer, secrets: readonly Buffer[], limit: number, alreadyMasked: number) {
  const pieces: Buffer[] = [];
  let pos = alreadyMasked; // everything before `pos` is written out or masked
  const next = secrets.map((secret) => data.indexOf(secret));
  for (;;) {
    let which = -1;
    for (let i = 0; i < secrets.length; i += 1) {
      const at = next[i] ?? -1;
      if (at !== -1 && at < limit && (which === -1 || at < (next[which] ?? -1))) which = i;
    }
    if (which === -1) break;
    const secret = secrets[which] as Buffer;
    const start = next[which] as number;
    const end = start + secret.length;
    if (start >= pos) {
      pieces.push(data.subarray(pos, start), MASK);
      pos = end;
    } else {
      pos = Math.max(pos, end); // overlaps the mask just written: widen it
    }
    // The next occurrence that could still reach past `pos`, overlapping ones included.
    next[which] = data.indexOf(secret, Math.max(start + 1, pos - secret.length + 1));
  }
  if (pos < limit) {
    pieces.push(data.subarray(pos, limit));
    pos = limit;
  }
  // Nothing masked (the usual case): pass the bytes on as they are, without copying them.
  const out = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
  return { out, rest: data.subarray(limit), masked: pos - limit };
}

/**
 * How many bytes at the end of `data` could be the start of a secret that the next chunk
 * completes: the longest such suffix, at most `longest` bytes. Only those are held back, so
 * output that cannot be part of a secret is passed on at once (live logs stay live).
 */
function pendingPrefix(data: Buffer, needles: readonly Buffer[], longest: number): number {
  // Runs once per chunk of output: compared in place, without a view per length, and only
  // where the suffix starts with a needle's first byte. Making views here took 125-184 ms of
  // the main thread per GB captured, ~15 % of its work (docs/benchmarks.md, section 4).
  const end = data.length;
  for (let length = Math.min(longest, end); length > 0; length -= 1) {
    const start = end - length;
    const first = data[start];
    for (const needle of needles) {
      if (needle.length > length && needle[0] === first && data.compare(needle, 0, length, start, end) === 0) return length;
    }
  }
  return 0;
}

/** Masks a stream of chunks synchronously: what `mask` returns may go straight to the log. */
export interface Masker {
  /** The chunk with every secret in it masked, less any bytes at its end that could be the start of a secret (held back). */
  mask(chunk: Buffer): Buffer;
  /** What was held back, masked: call once, at the end of the output. */
  flush(): Buffer;
}

const EMPTY = Buffer.alloc(0);

/** Replaces every occurrence of each secret with `***`, also when a secret is split across chunk boundaries. */
export function createMasker(secrets: readonly string[]): Masker {
  const needles = [...new Set(secrets.filter((secret) => secret !== ''))].map((secret) => Buffer.from(secret, 'utf8'));
  if (needles.length === 0) return { mask: (chunk) => chunk, flush: () => EMPTY };
  // Longest first, so that of occurrences starting at the same byte the longest is taken.
  needles.sort((a, b) => b.length - a.length);
  // A secret may start in the last bytes of a chunk and end in the next one: those may be held back.
  const holdBack = (needles[0] as Buffer).length - 1;
  let rest = EMPTY;
  let masked = 0;
  return {
    mask(chunk) {
      // Only when the last chunk ended with the start of a secret (rare) is this one copied.
      const data = rest.length === 0 ? chunk : Buffer.concat([rest, chunk]);
      const limit = data.length - pendingPrefix(data, needles, holdBack);
      const result = maskBuffer(data, needles, limit, masked);
      // Copy what is held back, so a large chunk is not kept alive by a small view of it.
      rest = result.rest.length === 0 ? EMPTY : Buffer.from(result.rest);
      masked = result.masked;
      return result.out;
    },
    flush() {
      const result = maskBuffer(rest, needles, rest.length, masked);
      rest = EMPTY;
      return result.out;
    },
  };
}
