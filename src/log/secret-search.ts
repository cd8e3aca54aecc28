/**
 * Where a run log's secrets occur in a chunk of output. One secret is looked for with
 * `Buffer.indexOf` (native, ~130 ms per GiB); that is one pass per secret, so a daemon with
 * twenty jobs made twenty, and halved a chatty command's throughput (docs/benchmarks-record.md,
 * section 4). From three long secrets on, one pass finds them all (Wu and Manber's
 * multi-pattern search): it reads a block of a few bytes at the end of a window as long as the
 * shortest secret, and skips ahead by as much as the block allows, a window's length at most
 * when the block is in no secret, which is nearly always. Secrets shorter than `LONG_BYTES` are
 * still looked for one by one.
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

function eachIndexOf(data: Buffer, needle: Buffer, limit: number, found: Array<[number, number]>): void {
  for (let at = data.indexOf(needle); at !== -1 && at < limit; at = data.indexOf(needle, at + 1)) found.push([at, at + needle.length]);
}

export function createSecretSearch(needles: readonly Buffer[]): SecretSearch {
  const long = needles.filter((needle) => needle.length >= LONG_BYTES);
  if (long.length < ONE_PASS_FROM) {
    return {
      occurrences(data, limit) {
        const found: Array<[number, number]> = [];
        for (const needle of needles) eachIndexOf(data, needle, limit, found);
        return found.length > 1 ? found.sort((a, b) => a[0] - b[0]) : found;
      },
    };
  }
  const short = needles.filter((needle) => needle.length < LONG_BYTES);
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
  return {
    occurrences(data, limit) {
      const found: Array<[number, number]> = [];
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
          if (start + needle.length <= data.length && data.compare(needle, 0, needle.length, start, start + needle.length) === 0) found.push([start, start + needle.length]);
        }
        end += 1;
      }
      for (const needle of short) eachIndexOf(data, needle, limit, found);
      return short.length > 0 ? found.sort((a, b) => a[0] - b[0]) : found;
    },
  };
}
