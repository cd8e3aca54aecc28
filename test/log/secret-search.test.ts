import { describe, expect, it } from 'vitest';
import { createSecretSearch } from '../../src/log/secret-search.js';

/** A small generator with a fixed seed, so that a failure can be run again. */
function generator(seed: number) {
  return (n: number) => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed % n;
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
      expect(found.map(([start]) => start), `${context}: sorted by start`).toEqual([...found.map(([start]) => start)].sort((a, b) => a - b));
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
    for (let round = 0; round < 40; round += 1) {
      // Secrets with a capital, a digit and lowercase letters: the search starts with the byte it expects to be rarest.
      const letters = 'aQ7b-';
      const word = (length: number, from = letters) => Buffer.from(Array.from({ length }, () => from[random(from.length)]).join(''));
      // One or two secrets are looked for each by a byte; three to six long ones (12 bytes or more) by a byte while each has one the text lacks, else in one pass.
      const needles = Array.from({ length: 1 + random(6) }, () => word(random(4) === 0 ? 1 + random(3) : random(3) === 0 ? 5 + random(7) : 12 + random(14)));
      const search = createSecretSearch(needles);
      for (let chunk = 0; chunk < 80; chunk += 1) {
        // Now text without some of the secrets' bytes, now text full of them, large and small chunks:
        // the byte looked for by finds nothing, finds a few candidates, or too many, and the search moves on to another
        // (or, for three or more, to the one pass for a while).
        const filler = ['xyz ', 'xyzQ', 'aQ7b-xyz', 'aaaa7', letters][random(5)] as string;
        const pieces: Buffer[] = [];
        for (let i = random(random(4) === 0 ? 120 : 12); i > 0; i -= 1) pieces.push(word(random(60), filler), random(4) === 0 ? (needles[random(needles.length)] as Buffer) : Buffer.alloc(0));
        const data = Buffer.concat(pieces);
        const limit = random(3) === 0 ? random(data.length + 1) : data.length;

        const found = search.occurrences(data, limit);

        const context = `round ${round}, chunk ${chunk}: needles ${needles.map(String).join(' ')}, limit ${limit}, data ${String(data)}`;
        expect(sorted(found), context).toEqual(bruteForce(needles, data, limit));
        expect(found.map(([start]) => start), `${context}: sorted by start`).toEqual([...found.map(([start]) => start)].sort((a, b) => a - b));
      }
    }
  });
});
