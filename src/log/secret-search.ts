/**
 * Where a run log's secrets occur in a chunk of output. Each secret can be looked for by itself
 * (`NeedleFinder`, below): in a chunk of `BY_BYTE_FROM_BYTES` or more, first by its rarest byte,
 * with `memchr`, then with `Buffer.indexOf` where that byte is common; in a smaller one, with
 * `Buffer.indexOf`. With fewer than three long secrets (`LONG_BYTES`), each is looked for by
 * itself. With more, one pass per secret would cost a pass per job (twenty jobs halved a chatty
 * command's throughput, docs/benchmarks-record.md, section 4), so from three long secrets on,
 * one pass finds them all (Wu and Manber's multi-pattern search): it reads a block of a few
 * bytes at the end of a window as long as the shortest secret, and skips ahead by as much as
 * the block allows, a window's length at most when the block is in no secret, which is nearly
 * always. Up to `BY_BYTE_UP_TO` long secrets are still looked for each by a byte, in chunks of
 * `BY_BYTE_FROM_BYTES` or more, while every one of them has a byte the output lacks. Secrets
 * shorter than `LONG_BYTES` are always looked for each by itself.
 */
export interface SecretSearch {
  /**
   * Every occurrence, overlapping ones included, of every secret that starts before `limit`
   * (and may end anywhere in `data`), as `[start, end)` pairs sorted by start.
   */
  occurrences(data: Buffer, limit: number): Array<[number, number]>;
}

/** Fewer long secrets than this are looked for one by one: `indexOf` beats the one pass there. */
const ONE_PASS_FROM = 3;
/**
 * Up to this many long secrets are also looked for one by one, each by its byte, while every
 * one of them has a byte the output lacks; the one pass takes over for the chunk in which one
 * of them finds its byte too common, and while any has none. Each is a `memchr` over the chunk
 * (10-20 ms a GiB), where the one pass reads 150-250 ms a GiB of text.
 */
const BY_BYTE_UP_TO = 8;
/**
 * Chunks smaller than this are looked at as before (`Buffer.indexOf`, or the one pass), and
 * teach the search nothing: for a line or two, the calls into `memchr` and the checks cost
 * more than the search they save (the break-even was about 512 bytes; a command that writes a
 * line at a time hands over chunks of a line), and a floor of `FEWEST_HITS` a chunk would judge
 * a byte by too few bytes of output.
 */
const BY_BYTE_FROM_BYTES = 4096;
/** The shortest secret the one pass takes: shorter ones would allow it only short skips. */
const LONG_BYTES = 12;
/**
 * Bytes read per step, hashed into a table of skips: 2^16 entries, more for many secrets (up to
 * 2^20, a MiB), so that the table stays mostly empty: the fuller it is, the more blocks of
 * output hash to a secret's and allow no skip. With 5,000 secrets of 32 hex characters, 2^20
 * entries searched text full of commit ids (`git log`) 1.7–2.0× as fast as 2^16, other text
 * ~10 % faster (docs/benchmarks-record.md, section 6).
 */
const BLOCK = 4;
const MIN_HASH_BITS = 16;
const MAX_HASH_BITS = 20;
/** A skip fits a byte: windows are at most this long (a longer secret is matched on its first WINDOW_MAX bytes, then checked whole). */
const WINDOW_MAX = 255 + BLOCK - 1;

function hashAt(data: Uint8Array, end: number, shift: number): number {
  // The block data[end - 3 .. end], as one 32-bit number, spread over the table.
  const word = (data[end - 3] as number) | ((data[end - 2] as number) << 8) | ((data[end - 1] as number) << 16) | ((data[end] as number) << 24);
  return Math.imul(word, 0x9e3779b1) >>> shift;
}

/** Whether the whole of `needle` is in `data` from `start` on: the check behind every candidate, by a byte or by the one pass. */
function occursAt(data: Buffer, needle: Buffer, start: number): boolean {
  return start + needle.length <= data.length && data.compare(needle, 0, needle.length, start, start + needle.length) === 0;
}

/** How common a byte is expected to be in a command's output, 1 (rare) to 4: where a secret's search starts. */
function expectedCommonness(byte: number): number {
  if (byte === 0x20 || byte === 0x0a || (byte >= 0x61 && byte <= 0x7a)) return 4;
  if ((byte >= 0x30 && byte <= 0x39) || COMMON_PUNCTUATION.has(byte)) return 3;
  return byte > 0x20 && byte < 0x7f ? 2 : 1;
}
const COMMON_PUNCTUATION = new Set([...'-.:/,_=()[]"\''].map((char) => char.charCodeAt(0)));

/**
 * A chunk's `memchr` hits for a secret's byte beyond which that byte is too common to look for
 * it by: one in 16 KiB (64 a MiB), at least 4. Each hit is a comparison and a call back into
 * `memchr`, a fraction of a microsecond; `Buffer.indexOf` takes 100-300 µs a MiB of text.
 */
const HIT_EVERY_BYTES = 16 * 1024;
const FEWEST_HITS = 4;
/** Once no byte of a secret served, the next this many chunks (twice as many each time, up to the most) go straight to `Buffer.indexOf`. */
const FIRST_REST_CHUNKS = 4;
const LONGEST_REST_CHUNKS = 256;

/**
 * Finds one secret. `Buffer.indexOf` (Boyer-Moore-Horspool, after a `memchr` for the first
 * byte while that finds few candidates) reads text made of the same letters and digits as the
 * secret at 100-300 ms a GiB here. Most secrets have a byte the output around them hardly has
 * (a digit, a capital, a `+`): `memchr` for that byte, with each hit checked for the whole
 * secret, reads a GiB in 10-20 ms. So the search starts with the secret's byte expected to be
 * rarest, goes on with `Buffer.indexOf` from the first hit past the chunk's allowance
 * (`HIT_EVERY_BYTES`), and tries the next byte with the next chunk; when none of its bytes
 * served, chunks go straight to `Buffer.indexOf` for a while (`FIRST_REST_CHUNKS`, twice as
 * long each time) before the next byte is tried, one byte after each rest. The bytes are only
 * where to start reading: every occurrence is found either way (the same idea as the "rare
 * byte" prefilter of Rust's `memchr::memmem`).
 */
class NeedleFinder {
  /** The secret's distinct bytes, each with its first offset in it, the rarest expected first. */
  private readonly anchors: Array<{ byte: number; offset: number }>;
  private current = 0;
  private failedInARow = 0;
  /** Bytes given up on before a rest: all of them at first, then one after each rest. */
  private triesBeforeRest: number;
  private restFor = 0;
  private nextRest = FIRST_REST_CHUNKS;

  constructor(private readonly needle: Buffer) {
    const firstAt = new Map<number, number>();
    needle.forEach((byte, offset) => {
      if (!firstAt.has(byte)) firstAt.set(byte, offset);
    });
    this.anchors = [...firstAt].map(([byte, offset]) => ({ byte, offset })).sort((a, b) => expectedCommonness(a.byte) - expectedCommonness(b.byte) || a.offset - b.offset);
    this.triesBeforeRest = this.anchors.length;
  }

  /** Whether the next chunks are looked at without a byte for a while (by `Buffer.indexOf`, or by the one pass beside other secrets). */
  get resting(): boolean {
    return this.restFor > 0;
  }

  /** Counts a chunk looked at without a byte (by `Buffer.indexOf`, or the one pass) toward the end of the rest. */
  rested(): void {
    if (this.restFor > 0) this.restFor -= 1;
  }

  /** Adds to `found` every occurrence that starts before `limit`, in order. */
  find(data: Buffer, limit: number, found: Array<[number, number]>): void {
    // A small chunk (or an empty secret) is looked at with `Buffer.indexOf` and counts toward no rest.
    let from = 0;
    if (data.length >= BY_BYTE_FROM_BYTES && this.anchors.length > 0) {
      if (this.resting) this.rested();
      else {
        const stoppedAt = this.findByByte(data, limit, found);
        if (stoppedAt === undefined) return;
        from = stoppedAt;
      }
    }
    this.indexOf(data, from, limit, found);
  }

  /**
   * Adds to `found` the occurrences that start before `limit`, in order, found by the current
   * byte. Where that byte is too common, gives it up for the next and returns the start from
   * which the chunk is yet to be looked at; all of it was, when it returns nothing.
   */
  findByByte(data: Buffer, limit: number, found: Array<[number, number]>): number | undefined {
    const { needle } = this;
    const { byte, offset } = this.anchors[this.current] as { byte: number; offset: number };
    const allowed = Math.max(FEWEST_HITS, Math.floor(data.length / HIT_EVERY_BYTES));
    let hits = 0;
    // An occurrence starting at `start` has this byte at `start + offset`, and each hit names one start.
    for (let at = data.indexOf(byte, offset); at !== -1; at = data.indexOf(byte, at + 1)) {
      const start = at - offset;
      if (start >= limit) break;
      hits += 1;
      if (hits > allowed) {
        this.giveUpOnAnchor();
        return start;
      }
      if (occursAt(data, needle, start)) found.push([start, start + needle.length]);
    }
    this.failedInARow = 0;
    this.triesBeforeRest = this.anchors.length;
    this.nextRest = FIRST_REST_CHUNKS;
    return undefined;
  }

  private giveUpOnAnchor(): void {
    this.current = (this.current + 1) % this.anchors.length;
    this.failedInARow += 1;
    if (this.failedInARow < this.triesBeforeRest) return;
    this.failedInARow = 0;
    this.triesBeforeRest = 1;
    this.restFor = this.nextRest;
    this.nextRest = Math.min(LONGEST_REST_CHUNKS, this.nextRest * 2);
  }

  private indexOf(data: Buffer, from: number, limit: number, found: Array<[number, number]>): void {
    const { needle } = this;
    for (let at = data.indexOf(needle, from); at !== -1 && at < limit; at = data.indexOf(needle, at + 1)) found.push([at, at + needle.length]);
  }
}

export function createSecretSearch(needles: readonly Buffer[]): SecretSearch {
  const long = needles.filter((needle) => needle.length >= LONG_BYTES);
  if (long.length < ONE_PASS_FROM) {
    const finders = needles.map((needle) => new NeedleFinder(needle));
    return {
      occurrences(data, limit) {
        const found: Array<[number, number]> = [];
        for (const finder of finders) finder.find(data, limit, found);
        return finders.length > 1 && found.length > 1 ? found.sort((a, b) => a[0] - b[0]) : found;
      },
    };
  }
  const short = needles.filter((needle) => needle.length < LONG_BYTES).map((needle) => new NeedleFinder(needle));
  const window = Math.min(WINDOW_MAX, ...long.map((needle) => needle.length));
  // A table eight times the blocks the secrets put in it, within its bounds.
  const bits = Math.min(MAX_HASH_BITS, Math.max(MIN_HASH_BITS, Math.ceil(Math.log2(8 * long.length * (window - BLOCK + 1)))));
  const shift = 32 - bits;
  // skip[h]: how far the window may move when its last block hashes to h. 0: the block ends
  // the window of some secret, whose candidates are checked before moving on by one.
  const skip = new Uint8Array(1 << bits).fill(window - BLOCK + 1);
  const endingWith = new Map<number, Buffer[]>();
  for (const needle of long) {
    for (let end = BLOCK - 1; end < window; end += 1) {
      const h = hashAt(needle, end, shift);
      skip[h] = Math.min(skip[h] as number, window - 1 - end);
    }
    const h = hashAt(needle, window - 1, shift);
    endingWith.set(h, [...(endingWith.get(h) ?? []), needle]);
  }
  /** The one pass: every long secret's occurrences that start before `limit`, added to `found` in order. */
  function onePass(data: Buffer, limit: number, found: Array<[number, number]>): void {
    // Windows that start before `limit`: their last byte is before limit + window - 1.
    const last = Math.min(data.length, limit + window - 1);
    for (let end = window - 1; end < last; ) {
      const h = hashAt(data, end, shift);
      const by = skip[h] as number;
      if (by > 0) {
        end += by;
        continue;
      }
      const start = end - window + 1;
      for (const needle of endingWith.get(h) ?? []) {
        if (occursAt(data, needle, start)) found.push([start, start + needle.length]);
      }
      end += 1;
    }
  }
  const longFinders = long.length <= BY_BYTE_UP_TO ? long.map((needle) => new NeedleFinder(needle)) : [];
  /** Each long secret by its byte, when all of them may be: false when one found its byte too common (what `found` got then is partial). */
  function byByte(data: Buffer, limit: number, found: Array<[number, number]>): boolean {
    if (longFinders.length === 0) return false;
    if (longFinders.some((finder) => finder.resting)) {
      for (const finder of longFinders) finder.rested();
      return false;
    }
    return longFinders.every((finder) => finder.findByByte(data, limit, found) === undefined);
  }
  return {
    occurrences(data, limit) {
      const found: Array<[number, number]> = [];
      // The first long secret that finds its byte too common sends the whole chunk to the one pass, which finds in order.
      let inOrder = true;
      if (data.length >= BY_BYTE_FROM_BYTES && byByte(data, limit, found)) inOrder = false;
      else {
        found.length = 0;
        onePass(data, limit, found);
      }
      if (short.length > 0) {
        for (const finder of short) finder.find(data, limit, found);
        inOrder = false;
      }
      return inOrder || found.length < 2 ? found : found.sort((a, b) => a[0] - b[0]);
    },
  };
}
