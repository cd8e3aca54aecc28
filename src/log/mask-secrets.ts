import { createSecretSearch, type SecretSearch } from './secret-search.js';

const MASK = Buffer.from('***');
/**
 * Masks the secrets in one buffer. Every byte covered by an occurrence of any secret is
 * hidden: overlapping or nested occurrences become a single `***`, so no part of a secret
 * shows even when secrets overlap. The first `alreadyMasked` bytes of `data` belong to a
 * mask written by the previous call. Only occurrences starting before `limit` are looked
 * at; the bytes from `limit` on are returned as `rest` for the next call, with `masked`
 * telling how many of them belong to a mask already written.
 */
function maskBuffer(data: Buffer, search: SecretSearch, limit: number, alreadyMasked: number) {
  const pieces: Buffer[] = [];
  let pos = alreadyMasked; // everything before `pos` is written out or masked
  for (const [start, end] of search.occurrences(data, limit)) {
    if (start >= pos) {
      pieces.push(data.subarray(pos, start), MASK);
      pos = end;
    } else {
      pos = Math.max(pos, end); // overlaps the mask just written: widen it
    }
  }
  if (pos < limit) {
    pieces.push(data.subarray(pos, limit));
    pos = limit;
  }
  // Nothing masked (the usual case): pass the bytes on as they are, without copying them.
  const out = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
  return { out, rest: data.subarray(limit), masked: pos - limit };
}

/** For `pendingPrefix`: the secrets longer than a byte, by their first two bytes, and which bytes start one. */
interface PrefixIndex {
  byFirstTwo: Map<number, Buffer[]>;
  first: Uint8Array;
}

function prefixIndex(needles: readonly Buffer[]): PrefixIndex {
  const index: PrefixIndex = { byFirstTwo: new Map(), first: new Uint8Array(256) };
  for (const needle of needles) {
    if (needle.length < 2) continue;
    const key = ((needle[0] as number) << 8) | (needle[1] as number);
    index.byFirstTwo.set(key, [...(index.byFirstTwo.get(key) ?? []), needle]);
    index.first[needle[0] as number] = 1;
  }
  return index;
}

/**
 * How many bytes at the end of `data` could be the start of a secret that the next chunk
 * completes: the longest such suffix, at most `longest` bytes. Only those are held back, so
 * output that cannot be part of a secret is passed on at once (live logs stay live).
 */
function pendingPrefix(data: Buffer, index: PrefixIndex, longest: number): number {
  // Runs once per chunk of output: compared in place, without a view per length, and only
  // against the secrets that start with the suffix's first two bytes. Making views here took
  // 125-184 ms of the main thread per GB captured, ~15 % of its work, and trying every secret
  // at every length made a chunk cost half a millisecond with 5,000 of them
  // (docs/benchmarks-record.md, sections 4 and 6).
  const end = data.length;
  for (let length = Math.min(longest, end); length > 0; length -= 1) {
    const start = end - length;
    const first = data[start] as number;
    if (index.first[first] === 0) continue;
    // A one-byte suffix is the start of any secret longer than a byte with that first byte.
    if (length === 1) return 1;
    for (const needle of index.byFirstTwo.get((first << 8) | (data[start + 1] as number)) ?? []) {
      if (needle.length > length && data.compare(needle, 0, length, start, end) === 0) return length;
    }
  }
  return 0;
}

/**
 * Where a chunk of output came from, set on the chunk itself by `tagOutputChannel`. A command's
 * stdout and stderr reach one log interleaved: a secret the command wrote in two pieces to
 * stdout must be put together from stdout alone, whatever stderr wrote in between.
 */
const CHANNEL = Symbol('deployhook.outputChannel');

type Tagged = Buffer & { [CHANNEL]?: string };

/** Marks every chunk `source` emits as coming from `channel`. Call before piping it anywhere. */
export function tagOutputChannel(source: NodeJS.EventEmitter, channel: string): void {
  // Listeners run in the order they were added: this one sees each chunk before a pipe writes it on.
  source.on('data', (chunk: unknown) => {
    if (Buffer.isBuffer(chunk)) tagChunk(chunk, channel);
  });
}

/** Marks one chunk as coming from `channel` (the capture thread reads the pipes itself). */
export function tagChunk(chunk: Buffer, channel: string): Buffer {
  (chunk as Tagged)[CHANNEL] = channel;
  return chunk;
}

/** The channel `tagOutputChannel` set on a chunk; chunks written by the daemon itself have none. */
export function channelOf(chunk: Buffer): string | undefined {
  return (chunk as Tagged)[CHANNEL];
}

/** Masks a stream of chunks synchronously: what `mask` returns may go straight to the log. */
export interface Masker {
  /**
   * The chunk with every secret in it masked, less any bytes at its end that could be the start
   * of a secret (held back). Held back per channel (see `tagOutputChannel`): the continuation of
   * a secret is looked for in the next chunk of the same channel.
   */
  mask(chunk: Buffer): Buffer;
  /** What was held back, masked: call once, at the end of the output. */
  flush(): Buffer;
  /** What is held back now, to go on masking in another masker of the same secrets (`createMasker`'s `held`). */
  held(): HeldBack;
}

/** Per channel, the bytes a masker holds back and how many of them belong to a mask already written. */
export type HeldBack = Array<[channel: string | undefined, rest: Uint8Array, masked: number]>;

const EMPTY = Buffer.alloc(0);

interface Compiled {
  search: SecretSearch;
  index: PrefixIndex;
  /** A secret may start in the last bytes of a chunk and end in the next one: those may be held back. */
  holdBack: number;
}

/**
 * What masking with `secrets` needs, made once per list: every run of a config masks the same
 * list (every secret the daemon knows), and with thousands of secrets making it takes
 * milliseconds.
 */
const compiledFor = new WeakMap<readonly string[], { list: readonly string[]; compiled: Compiled | undefined }>();

function compile(secrets: readonly string[]): Compiled | undefined {
  const cached = compiledFor.get(secrets);
  // The same list as when it was made (a caller that changed its array gets a new masker).
  if (cached !== undefined && cached.list.length === secrets.length && cached.list.every((secret, index) => secret === secrets[index])) return cached.compiled;
  const needles = [...new Set(secrets.filter((secret) => secret !== ''))].map((secret) => Buffer.from(secret, 'utf8'));
  // Longest first, so that of occurrences starting at the same byte the longest is taken.
  needles.sort((a, b) => b.length - a.length);
  const compiled = needles.length === 0 ? undefined : { search: createSecretSearch(needles), index: prefixIndex(needles), holdBack: (needles[0] as Buffer).length - 1 };
  compiledFor.set(secrets, { list: [...secrets], compiled });
  return compiled;
}

/**
 * Replaces every occurrence of each secret with `***`, also when a secret is split across chunk
 * boundaries. `held`: what another masker of the same secrets held back, to go on from there.
 */
export function createMasker(secrets: readonly string[], held: HeldBack = []): Masker {
  const compiled = compile(secrets);
  if (compiled === undefined) return { mask: (chunk) => chunk, flush: () => EMPTY, held: () => [] };
  const { search, index, holdBack } = compiled;
  // Per channel: what was held back, and how many of its bytes belong to a mask already written.
  const heldBack = new Map<string | undefined, { rest: Buffer; masked: number }>(held.map(([channel, rest, masked]) => [channel, { rest: Buffer.from(rest), masked }]));
  return {
    mask(chunk) {
      const channel = channelOf(chunk);
      const state = heldBack.get(channel);
      // Only when the channel's last chunk ended with the start of a secret (rare) is this one copied.
      const data = state === undefined ? chunk : Buffer.concat([state.rest, chunk]);
      const limit = data.length - pendingPrefix(data, index, holdBack);
      const result = maskBuffer(data, search, limit, state?.masked ?? 0);
      // Copy what is held back, so a large chunk is not kept alive by a small view of it.
      if (result.rest.length === 0 && result.masked === 0) heldBack.delete(channel);
      else heldBack.set(channel, { rest: Buffer.from(result.rest), masked: result.masked });
      return result.out;
    },
    flush() {
      const out = [...heldBack.values()].map((state) => maskBuffer(state.rest, search, state.rest.length, state.masked).out);
      heldBack.clear();
      return out.length === 0 ? EMPTY : Buffer.concat(out);
    },
    held: () => [...heldBack].map(([channel, { rest, masked }]) => [channel, Uint8Array.from(rest), masked]),
  };
}
