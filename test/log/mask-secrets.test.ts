import { describe, it, expect } from 'vitest';
import { EventEmitter } from 'node:events';
import { createMasker, tagOutputChannel } from '../../src/log/mask-secrets.js';

type Chunk = string | Buffer;

function mask(secrets: readonly string[], chunks: readonly Chunk[]): Buffer {
  const masker = createMasker(secrets);
  return Buffer.concat([...chunks.map((chunk) => masker.mask(Buffer.from(chunk))), masker.flush()]);
}

/** `text` as bytes, split at the given byte offsets. */
function splitAt(text: string | Buffer, ...offsets: number[]): Buffer[] {
  const bytes = Buffer.from(text);
  const bounds = [0, ...offsets, bytes.length];
  return bounds.slice(1).map((end, i) => bytes.subarray(bounds[i], end));
}

function everySplit(name: string, secrets: string[], text: string, expected: string) {
  const length = Buffer.byteLength(text);
  const twos = Array.from({ length: length - 1 }, (_, i) => ({ name: `${name}, split at byte ${i + 1}`, secrets, chunks: splitAt(text, i + 1), expected }));
  const threes = twos.flatMap((_, i) =>
    Array.from({ length: length - i - 2 }, (_unused, j) => ({ name: `${name}, split at bytes ${i + 1} and ${i + j + 2}`, secrets, chunks: splitAt(text, i + 1, i + j + 2), expected })),
  );
  return [...twos, ...threes];
}

const cases: Array<{ name: string; secrets: string[]; chunks: Chunk[]; expected: string | Buffer }> = [
  { name: 'a secret inside one chunk', secrets: ['hunter2'], chunks: ['the password is hunter2.\n'], expected: 'the password is ***.\n' },
  { name: 'every occurrence of a secret', secrets: ['s3cr3t'], chunks: ['s3cr3t, s3cr3t and s3cr3t'], expected: '***, *** and ***' },
  { name: 'several secrets', secrets: ['alpha', 'beta'], chunks: ['alpha and beta, then beta and alpha'], expected: '*** and ***, then *** and ***' },
  { name: 'a secret containing a shorter one, longest first', secrets: ['abc', 'abcdef'], chunks: ['x abcdef y abc z'], expected: 'x *** y *** z' },
  { name: 'secrets overlapping each other, no part shown', secrets: ['abcd', 'cdef'], chunks: ['-abcdef-'], expected: '-***-' },
  { name: 'a secret overlapping itself', secrets: ['aba'], chunks: ['xababax'], expected: 'x***x' },
  { name: 'a secret repeated back to back', secrets: ['key'], chunks: ['keykey'], expected: '******' },
  { name: 'a secret at the very end of the stream', secrets: ['hunter2'], chunks: ['ends with hunter2'], expected: 'ends with ***' },
  { name: 'the start of a secret at the end of the stream, flushed unchanged', secrets: ['hunter2'], chunks: ['ends with hunt'], expected: 'ends with hunt' },
  { name: 'a multi-byte UTF-8 secret', secrets: ['pässwörd🔑'], chunks: ['ünïcödé pässwörd🔑 ✓'], expected: 'ünïcödé *** ✓' },
  { name: 'empty secrets, ignored', secrets: ['', 'x'], chunks: ['axb'], expected: 'a***b' },
  { name: 'only an empty secret: bytes unchanged', secrets: [''], chunks: ['nothing to hide'], expected: 'nothing to hide' },
  { name: 'no secrets: bytes unchanged, invalid UTF-8 included', secrets: [], chunks: [Buffer.from([0xff, 0x00, 0xfe]), 'plain', Buffer.from([0xc3])], expected: Buffer.from([0xff, 0x00, 0xfe, 0x70, 0x6c, 0x61, 0x69, 0x6e, 0xc3]) },
  { name: 'no secret present: bytes unchanged across chunks', secrets: ['absent'], chunks: [Buffer.from([0xe2, 0x9c]), Buffer.from([0x93, 0x0a])], expected: '✓\n' },
  ...everySplit('a secret', ['abc123xyz'], 'token=abc123xyz;', 'token=***;'),
  ...everySplit('a multi-byte secret', ['ключ🔑'], 'a ключ🔑 b', 'a *** b'),
  ...everySplit('overlapping secrets', ['abcd', 'cdef', 'ef'], '_abcdef_ef', '_***_***'),
];

describe('createMasker', () => {
  it.each(cases)('masks $name', ({ secrets, chunks, expected }) => {
    expect((mask(secrets, chunks)).toString('latin1')).toBe(Buffer.from(expected).toString('latin1'));
  });

  const heldBack: Array<{ input: string; passed: string }> = [
    { input: 'abcdefghij', passed: 'abcdefghij' },
    { input: 'abcdef1234', passed: 'abcdef' },
    { input: 'abcdef12', passed: 'abcdef' },
    { input: 'abcx', passed: 'abc' },
    { input: 'abc1x', passed: 'abc1' },
  ];

  it.each(heldBack)('passes $passed of $input on at once, holding back only what could start a secret', ({ input, passed }) => {
    const masker = createMasker(['12345', 'xy']);

    const first = masker.mask(Buffer.from(input));

    expect(first.toString()).toBe(passed);
  });

  it('masks the same way however the stream is chunked, matching a byte-by-byte reference', () => {
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const word = (length: number) => Array.from({ length }, () => 'ab'[random(2)]).join('');

    for (let round = 0; round < 300; round += 1) {
      const secrets = Array.from({ length: 1 + random(3) }, () => word(1 + random(4)));
      const text = word(random(40));
      const offsets = [...new Set(Array.from({ length: random(5) }, () => random(text.length + 1)))].sort((a, b) => a - b);

      const masked = mask(secrets, splitAt(text, ...offsets));

      expect(masked.toString(), `secrets ${JSON.stringify(secrets)}, text ${text}, splits ${String(offsets)}`).toBe(referenceMask(secrets, text));
    }
  });

  it('masks many long secrets (searched for in one pass) the same way, however the stream is chunked', () => {
    let seed = 4242;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    const word = (length: number, letters = 'ab') => Array.from({ length }, () => letters[random(letters.length)]).join('');

    for (let round = 0; round < 300; round += 1) {
      const secrets = Array.from({ length: 3 + random(5) }, () => word(12 + random(10)));
      let text = '';
      for (let i = random(8); i > 0; i -= 1) text += word(random(20), 'abx') + (random(2) === 0 ? (secrets[random(secrets.length)] ?? '') : '');
      const offsets = [...new Set(Array.from({ length: random(6) }, () => random(text.length + 1)))].sort((a, b) => a - b);

      const masked = mask(secrets, splitAt(text, ...offsets));

      expect(masked.toString(), `secrets ${JSON.stringify(secrets)}, text ${text}, splits ${String(offsets)}`).toBe(referenceMask(secrets, text));
    }
  });

  it('masks with the list as it is now, also when the same array was given before and changed since', () => {
    const secrets = ['abcdefghijklmnop'];
    expect(createMasker(secrets).mask(Buffer.from('x abcdefghijklmnop y')).toString()).toBe('x *** y');
    secrets.push('SECRET-two');
    expect(createMasker(secrets).mask(Buffer.from('x SECRET-two y abcdefghijklmnop')).toString()).toBe('x *** y ***');
  });

  it('masks a large stream as it flows, one chunk out for each chunk in', () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    // Each chunk ends with the first half of the secret and starts with the second half.
    chunk.write('RET', 0);
    chunk.write('SEC', chunk.length - 3);
    const masker = createMasker(['SECRET']);
    let bytes = 0;
    let masks = 0;
    let largest = 0;
    let nonEmpty = 0;
    const count = (out: Buffer) => {
      bytes += out.length;
      largest = Math.max(largest, out.length);
      nonEmpty += out.length > 0 ? 1 : 0;
      masks += out.toString('latin1').split('***').length - 1;
    };

    for (let i = 0; i < 320; i += 1) count(masker.mask(chunk));
    const flushed = masker.flush();
    count(flushed);

    // Every chunk gave output at once; only the last chunk's "SEC" waited for the end.
    expect(nonEmpty).toBe(321);
    expect(flushed.toString()).toBe('SEC');
    expect(largest).toBeLessThanOrEqual(chunk.length);
    expect(masks).toBe(319);
    expect(bytes).toBe(320 * chunk.length - 319 * 'SECRET'.length + 319 * '***'.length);
  });
});

/** Masks `text` the slow, obvious way: occurrences by start, overlapping ones merged into one mask. */
function referenceMask(secrets: readonly string[], text: string): string {
  const found: Array<{ start: number; end: number }> = [];
  for (const secret of secrets.filter(Boolean)) {
    for (let start = 0; start + secret.length <= text.length; start += 1) {
      if (text.startsWith(secret, start)) found.push({ start, end: start + secret.length });
    }
  }
  found.sort((a, b) => a.start - b.start);
  let out = '';
  let pos = 0;
  for (const { start, end } of found) {
    if (start >= pos) {
      out += `${text.slice(pos, start)}***`;
      pos = end;
    } else pos = Math.max(pos, end);
  }
  return out + text.slice(pos);
}

describe('output channels', () => {
  /** `text` as a chunk marked as coming from `channel`, the way a tagged pipe marks it. */
  function from(channel: string, text: string): Buffer {
    const source = new EventEmitter();
    tagOutputChannel(source, channel);
    const chunk = Buffer.from(text);
    source.emit('data', chunk);
    return chunk;
  }

  it('puts a secret together within its channel, whatever another channel wrote between its pieces', () => {
    const masker = createMasker(['supersecretwebhook']);
    const out = [masker.mask(from('stdout', 'url=x:superse')), masker.mask(from('stderr', 'warning\n')), masker.mask(from('stdout', 'cretwebhook@host\n')), masker.flush()];
    expect(Buffer.concat(out).toString()).toBe('url=x:warning\n***@host\n');
  });

  it('does not take another channel\'s bytes for the rest of a secret', () => {
    const masker = createMasker(['supersecretwebhook']);
    const out = [masker.mask(from('stdout', 'a superse')), masker.mask(from('stderr', 'cretwebhook b\n')), masker.flush()];
    // Neither channel wrote the secret: both pieces are shown as written, the held-back one last.
    expect(Buffer.concat(out).toString()).toBe('a cretwebhook b\nsuperse');
  });

  it('flushes what every channel held back', () => {
    const masker = createMasker(['hunter2']);
    const out = [masker.mask(from('stdout', 'x hunt')), masker.mask(from('stderr', 'y hun')), masker.mask(Buffer.from('note hu'))];
    expect(Buffer.concat(out).toString()).toBe('x y note ');
    expect(masker.flush().toString()).toBe('hunthunhu');
  });
});
