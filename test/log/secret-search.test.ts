import { describe, expect, it } from 'vitest';
import { createSecretSearch } from '../../src/log/secret-search.js';

/** A small generator with a fixed seed, so that a failure can be run again. */
function generator(seed: number) {
  return (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    // The high bits: the low bits of this generator repeat with short periods.
    return Math.floor((seed / 2 ** 31) * n);
  };
}

/** Every occurrence the obvious way: each secret at each start before `limit`. */
function bruteForce(needles: readonly Buffer[], data: Buffer, limit: number): Array<[number, number]> {
  const found: Array<[number, number]> = [];
  for (const needle of needles) {
    for (let start = 0; start < limit && start + needle.length <= data.length; start += 1) {
      if (data.compare(needle, 0, needle.length, start, start + needle.length) === 0) found.push([start, start + needle.length]);
    }
  }
  return sorted(found);
}

const sorted = (pairs: Array<[number, number]>) => [...pairs].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
/** Whether each pair starts where the one before it starts, or after. */
const inOrderOfStart = (pairs: Array<[number, number]>) => pairs.every(([start], index) => index === 0 || start >= (pairs[index - 1] as [number, number])[0]);

describe('the search for secrets', () => {
  it('finds what a byte-by-byte search finds, overlaps included, with few and with many secrets, short and long', () => {
    const random = generator(7);
    for (let round = 0; round < 400; round += 1) {
      // A small alphabet, so that secrets share blocks, overlap and nearly match the text.
      const alphabet = 'abc'.slice(0, 2 + random(2));
      const word = (length: number, letters = alphabet) => Buffer.from(Array.from({ length }, () => letters[random(letters.length)]).join(''));
      // Text around the secrets sometimes has letters no secret has: blocks in no secret, the longest skips.
      const filler = random(2) === 0 ? alphabet : `${alphabet}xyz`;
      const count = 1 + random(9);
      // Mostly long secrets (the one pass), some short ones (looked for one by one), now and then one longer than a window.
      const needles = Array.from({ length: count }, () => word(random(5) === 0 ? 1 + random(11) : random(20) === 0 ? 260 + random(40) : 12 + random(20)));
      const pieces: Buffer[] = [];
      for (let i = random(12); i > 0; i -= 1) pieces.push(word(random(30), filler), random(3) === 0 ? (needles[random(needles.length)] as Buffer) : Buffer.alloc(0));
      const data = Buffer.concat(pieces);
      const limit = random(data.length + 1);
      const search = createSecretSearch(needles);

      const found = search.occurrences(data, limit);

      const context = `round ${round}: needles ${needles.map(String).join(' ')}, data ${String(data)}, limit ${limit}`;
      expect(sorted(found), context).toEqual(bruteForce(needles, data, limit));
      expect(inOrderOfStart(found), `${context}: sorted by start`).toBe(true);
    }
  });

  it('finds a secret at the very start and the very end of a buffer, and one cut off by its end not at all', () => {
    const needles = ['0123456789abcdef0123', 'fedcba9876543210fedc', 'a1b2c3d4e5f6a7b8c9d0'].map((text) => Buffer.from(text));
    const data = Buffer.from(`${needles[0]}xx${needles[2]}yy${needles[1]}`);
    expect(createSecretSearch(needles).occurrences(data, data.length)).toEqual([[0, 20], [22, 42], [44, 64]]);
    const cut = data.subarray(0, data.length - 1);
    expect(createSecretSearch(needles).occurrences(cut, cut.length)).toEqual([[0, 20], [22, 42]]);
  });

  it('finds every occurrence of one to six secrets, chunk after chunk, while bytes of theirs come and go in the text', () => {
    const random = generator(11);
    for (let round = 0; round < 20; round += 1) {
      // Secrets with a capital, a digit and lowercase letters: the search starts with the byte it expects to be rarest,
      // here the capital, which is also the secrets' rarest, so that a few secrets in a chunk still let it serve.
      const letters = 'aaaaabbbbb7-Q';
      const word = (length: number, from = letters) => Buffer.from(Array.from({ length }, () => from[random(from.length)]).join(''));
      // One or two secrets are looked for each by a byte; three to six long ones (12 bytes or more) by a byte while each has one the text lacks, else in one pass.
      // In half the rounds every secret is long: the results of several secrets looked for by a byte, with no short one beside them.
      const allLong = random(2) === 0;
      const needles = Array.from({ length: 1 + random(6) }, () => word(allLong ? 12 + random(14) : random(4) === 0 ? 1 + random(3) : random(3) === 0 ? 5 + random(7) : 12 + random(14)));
      const search = createSecretSearch(needles);
      let kind = 0;
      for (let chunk = 0; chunk < 200; chunk += 1) {
        // Text that now lacks some of the secrets' bytes and now is full of them, for stretches of 1 to 40 chunks:
        // the byte looked for by finds nothing, a few candidates or too many, and the search moves on to another,
        // or rests (for three or more secrets, in the one pass). Mostly chunks of 4-40 KiB (looked at by a byte),
        // some of a line or two (looked at as before), now and then one of 70-200 KiB (more than the fewest hits allowed).
        if (random(20) === 0) kind = random(5);
        const filler = word(20 + random(40), ['xyz ', 'xyzQ', 'aQ7b-xyz', 'aaaa7', letters][kind]);
        const size = random(8) === 0 ? random(300) : random(30) === 0 ? 70_000 + random(130_000) : 4096 + random(36_000);
        const data = Buffer.alloc(size, filler);
        let lastAt = 0;
        for (let i = random(4) === 0 ? random(40) : random(4); i > 0; i -= 1) {
          const needle = needles[random(needles.length)] as Buffer;
          if (needle.length > size) continue;
          lastAt = random(size - needle.length + 1);
          needle.copy(data, lastAt);
        }
        // Now and then the limit falls right on a secret's start: that occurrence is the next chunk's.
        const limit = [data.length, data.length, random(data.length + 1), lastAt][random(4)] as number;

        const found = search.occurrences(data, limit);

        // Every occurrence, overlapping ones included, the way the search worked before it looked by a byte.
        const expected: Array<[number, number]> = [];
        for (const needle of needles) {
          for (let at = data.indexOf(needle); at !== -1 && at < limit; at = data.indexOf(needle, at + 1)) expected.push([at, at + needle.length]);
        }
        const context = `round ${round}, chunk ${chunk}: needles ${needles.map(String).join(' ')}, ${data.length} bytes of ${String(filler)}, limit ${limit}`;
        // As text: a chunk full of a one-byte secret has tens of thousands of occurrences, too many to compare one by one quickly.
        expect(sorted(found).join(' '), context).toBe(sorted(expected).join(' '));
        expect(inOrderOfStart(found), `${context}: sorted by start`).toBe(true);
      }
    }
  });
});
