import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createMasker, type HeldBack } from './mask-secrets.js';
import { SPILL_HEADER_BYTES, spillFiles, spillHeader } from './spill-files.js';
import { promiseSpillIo, type SpillHandle, type SpillIo } from './spill-io.js';

export interface CappedOutputOptions {
  /** The log file's own stream (already open, append mode); capped output is written into it. Do not end it. */
  file: Writable;
  /** Path of the log file: spill segments are created beside it as `${logPath}.tail-a` / `.tail-b`. */
  logPath: string;
  /** Most bytes of output kept; the first half is written through, the last half kept for the end. */
  maxBytes: number;
  /** Masked in the output before it is capped, in the same write: no stream in between. None by default. */
  secrets?: readonly string[] | undefined;
  /** How the spill segments are written: node's thread pool by default. */
  io?: SpillIo | undefined;
  /** Where another capped output of the same log left off (its `lend`): this one goes on from there. */
  state?: CappedState | undefined;
}

/** Where a capped output stands: what another one needs to go on writing the same log. */
export interface CappedState {
  totalBytes: number;
  lastHeadByte: number;
  lastByte: number;
  current: 0 | 1;
  currentLength: number;
  turns: [number, number];
  /** Which spill segments exist, with a header. */
  made: [boolean, boolean];
  /** What the masker holds back. */
  held: HeldBack;
  /** The first error met writing the log, if any (its message, and its code when it has one): output after it is discarded. */
  failure?: string;
  failureCode?: string;
}

/** The error a state carries, as an Error again. */
function failureOf(state: CappedState): Error | undefined {
  if (state.failure === undefined) return undefined;
  const error: NodeJS.ErrnoException = new Error(state.failure);
  if (state.failureCode !== undefined) error.code = state.failureCode;
  return error;
}

export interface CappedTotals {
  totalBytes: number;
  droppedBytes: number;
  /** The output was empty or its last byte is a newline: what is written after it starts a line. */
  endsWithNewline: boolean;
}

export interface CappedOutput {
  /** Where output goes (write bytes here, respecting backpressure: it is a proper Writable). */
  readonly input: Writable;
  /**
   * Ends input, writes the dropped-bytes marker and the kept tail into `file` if anything was dropped,
   * removes spill files. Resolves when all of it is written to `file` (not ended). Rejects with the first
   * error met writing `file` or the spill files; input is drained (and discarded) after such an error.
   */
  finish(): Promise<CappedTotals>;
  /**
   * Lends the log to another writer (the capture thread): once what was written so far is on
   * disk and the spill segments are closed, resolves with where the output stands. Until
   * `resume`, what is written to `input` waits.
   */
  lend(): Promise<CappedState>;
  /** Takes the log back from the writer it was lent to, as that writer left it. */
  resume(state: CappedState): void;
}

const COPY_CHUNK_BYTES = 1024 * 1024;
/**
 * Output buffered while the previous write is on disk (the stream default, 16 KiB, stalled the
 * command on every chunk). 16 MiB rather than 1: where writing a file is cheap, 1 GB of output
 * went through 1.3× as fast (docs/benchmarks-record.md, section 4). It is held only while a command
 * writes faster than the disk takes it, and is masked in one go: ~2.5 ms of the main thread for
 * 16 MiB with one secret.
 */
const INPUT_BUFFER_BYTES = 16 * 1024 * 1024;
const NEWLINE = 0x0a;

/**
 * Writes the first half of `maxBytes` to the log as it comes and keeps the last half on disk, in two
 * segments of `tailBytes` that take turns: when one fills up, the other is written over from its start.
 * The last `tailBytes` of output are then the end of the older segment and all of the current one.
 * Memory use is a few stream buffers, whatever `maxBytes` and the size of the output. An 'error'
 * listener stays on `file`, so a failing disk is reported by `finish` rather than crashing the daemon.
 */
export function createCappedOutput({ file, logPath, maxBytes, secrets = [], io = promiseSpillIo, state }: CappedOutputOptions): CappedOutput {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError(`Expected \`maxBytes\` to be a non-negative integer, got \`${String(maxBytes)}\``);
  }
  const headBytes = Math.floor(maxBytes / 2);
  const tailBytes = maxBytes - headBytes;
  const paths = spillFiles(logPath);
  const segments: [SpillHandle | undefined, SpillHandle | undefined] = [undefined, undefined];
  // A fresh log's state; `restore` (below) takes up another writer's instead.
  let made: [boolean, boolean] = [false, false];
  let current: 0 | 1 = 0;
  let currentLength = 0;
  let totalBytes = 0;
  let lastHeadByte = NEWLINE;
  let lastByte = NEWLINE;
  let masker = createMasker(secrets);
  let failure: Error | undefined;
  let lastWrite: Promise<void> = Promise.resolve();
  const fail = (err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err));
  };
  file.on('error', fail);

  async function toFile(chunk: Buffer): Promise<void> {
    if (failure) return;
    if (file.destroyed || file.writableEnded) return fail(new Error(`Expected the log file ${logPath} to be open for writing, but its stream was closed`));
    let ok = true;
    lastWrite = new Promise((resolve) => {
      ok = file.write(chunk, (err) => {
        if (err) fail(err);
        resolve();
      });
    });
    if (!ok) await drained(file);
  }

  // Each segment's header follows its current length (spill-files.ts): written after the bytes it
  // counts, so after a crash it never counts bytes of an earlier round; one header write in
  // flight at a time, the next with the newest lengths, outside the path of the output.
  const headerWanted: [number | undefined, number | undefined] = [undefined, undefined];
  // The turn each segment holds: segment 0 the even ones, segment 1 the odd ones.
  let turns: [number, number] = [0, 1];

  /** Takes up where another capped output of the same log left off (its `lend`). */
  function restore(next: CappedState): void {
    ({ totalBytes, lastHeadByte, lastByte, current, currentLength } = next);
    turns = [...next.turns];
    made = [...next.made];
    masker = createMasker(secrets, next.held);
    const failed = failureOf(next);
    if (failed) fail(failed);
  }
  if (state) restore(state);
  /** Writes a segment's header: the turn it holds, and how much of it is current. */
  async function writeHeader(side: 0 | 1, length: number): Promise<void> {
    await segments[side]?.write(spillHeader({ turn: turns[side], length }), 0);
  }
  let headers: Promise<void> | undefined;
  async function writeHeaders(): Promise<void> {
    for (;;) {
      const side = headerWanted.findIndex((length) => length !== undefined) as -1 | 0 | 1;
      if (side === -1 || failure) return;
      const length = headerWanted[side] as number;
      headerWanted[side] = undefined;
      await writeHeader(side, length);
    }
  }
  function noteLength(side: 0 | 1, length: number): void {
    headerWanted[side] = length;
    headers ??= writeHeaders()
      .catch(fail)
      .finally(() => {
        headers = undefined;
      });
  }
  /** Resolves once every header is written. */
  async function headersWritten(): Promise<void> {
    while (headers) await headers;
  }

  /** A segment, made with a header of length 0 the first time, so that its first bytes are never read as output. */
  async function segmentHandle(side: 0 | 1): Promise<SpillHandle> {
    const open = segments[side];
    if (open) return open;
    const handle = await io.open(paths[side], made[side]);
    segments[side] = handle;
    if (!made[side]) {
      made[side] = true;
      await writeHeader(side, 0);
    }
    return handle;
  }

  /** Closes the segments (opened again when next written or read). */
  async function closeSegments(): Promise<void> {
    await headersWritten();
    const open = segments.filter((handle) => handle !== undefined);
    segments.fill(undefined);
    await Promise.all(open.map(async (handle) => handle.close()));
  }

  /** Writes `pieces` into the current segment at its end, in one `writev` (again for the rest after a short write). */
  async function toSegment(pieces: Buffer[]): Promise<void> {
    const handle = await segmentHandle(current);
    for (let rest = pieces; rest.length > 0 && !failure; ) {
      const bytesWritten = await handle.writev(rest, SPILL_HEADER_BYTES + currentLength);
      if (bytesWritten === 0) throw new Error(`Expected to write to the spill file of ${logPath}, but no byte was written`);
      currentLength += bytesWritten;
      rest = skipBytes(rest, bytesWritten);
    }
    noteLength(current, currentLength);
  }

  /** Keeps `chunks` as the newest output: one write per segment they reach, not one per chunk. */
  async function spill(chunks: readonly Buffer[]): Promise<void> {
    let pieces: Buffer[] = [];
    let piecesLength = 0;
    for (const chunk of chunks) {
      for (let offset = 0; offset < chunk.length && !failure; ) {
        if (currentLength + piecesLength === tailBytes) {
          await toSegment(pieces);
          [pieces, piecesLength] = [[], 0];
          // The other segment is written over from its start. Its header names the new turn, with
          // a length of 0, before any of it is: after a crash, recovery reads the segments
          // without this state (crashed-log.ts).
          const next = turns[current] + 1;
          current = current === 0 ? 1 : 0;
          currentLength = 0;
          await headersWritten();
          turns[current] = next;
          await writeHeader(current, 0);
        }
        const length = Math.min(chunk.length - offset, tailBytes - currentLength - piecesLength);
        pieces.push(chunk.subarray(offset, offset + length));
        piecesLength += length;
        offset += length;
      }
    }
    if (piecesLength > 0) await toSegment(pieces);
  }

  async function accept(chunks: readonly Buffer[]): Promise<void> {
    const spilled: Buffer[] = [];
    for (const chunk of chunks) {
      const start = totalBytes;
      totalBytes += chunk.length;
      if (chunk.length > 0) lastByte = chunk[chunk.length - 1] ?? NEWLINE;
      if (failure) continue; // keep draining so the command is never blocked on a log that cannot be written
      const inHead = Math.max(0, Math.min(chunk.length, headBytes - start));
      if (inHead > 0) {
        lastHeadByte = chunk[inHead - 1] ?? NEWLINE;
        await toFile(chunk.subarray(0, inHead));
      }
      if (inHead < chunk.length && tailBytes > 0) spilled.push(chunk.subarray(inHead));
    }
    if (spilled.length > 0 && !failure) await spill(spilled);
  }

  async function copy(side: 0 | 1, from: number, to: number): Promise<void> {
    if (!made[side]) return;
    const handle = await segmentHandle(side);
    for (let position = from; position < to && !failure; ) {
      const buffer = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, to - position));
      const bytesRead = await handle.read(buffer, SPILL_HEADER_BYTES + position);
      if (bytesRead === 0) throw new Error(`Expected ${to - position} more bytes in the spill file of ${logPath}, but it ended early`);
      position += bytesRead;
      await toFile(buffer.subarray(0, bytesRead));
    }
  }

  let cleaned: Promise<unknown> | undefined;
  const cleanUp = () => (cleaned ??= closeSegments().catch(fail).then(() => Promise.all(paths.map(async (path) => io.remove(path)?.catch(fail)))));

  async function complete(): Promise<void> {
    try {
      const droppedBytes = Math.max(0, totalBytes - maxBytes);
      if (droppedBytes > 0) {
        const newline = headBytes > 0 && lastHeadByte !== NEWLINE ? '\n' : '';
        await toFile(Buffer.from(`${newline}[deployhook] ... ${droppedBytes} bytes of output dropped here (max_log_bytes is ${maxBytes}); the last ${tailBytes} bytes follow ...\n`));
      }
      const older = current === 0 ? 1 : 0;
      // From the second turn on, the other segment holds a full `tailBytes` of older output.
      if (turns[current] > 0) await copy(older, currentLength, tailBytes);
      await copy(current, 0, currentLength);
      await lastWrite;
    } catch (err) {
      fail(err);
    } finally {
      await cleanUp();
    }
  }

  // From `lend` to `resume`: the log is (being) lent to another writer. Once what was written
  // before is on disk (`holding`), what comes meanwhile waits for the log to come back; the end
  // of the output always does.
  let lent: { back: Promise<void>; resolve: () => void } | undefined;
  let holding = false;
  // The write being done now, which a lend waits for.
  let inFlight: Promise<void> = Promise.resolve();
  // Callbacks never carry an error: an 'error' event here could crash a daemon nobody listens for.
  const settle = (work: () => Promise<void>, callback: () => void) => {
    inFlight = (holding && lent ? lent.back : Promise.resolve()).then(work).catch(fail);
    void inFlight.then(callback);
  };
  // While one write is on disk, the next output (up to 16 MiB) gathers here and then goes in one `writev`.
  const input = new Writable({
    highWaterMark: INPUT_BUFFER_BYTES,
    write: (chunk: Buffer, _encoding, callback) => settle(() => accept([masker.mask(chunk)]), () => callback()),
    writev: (chunks, callback) => settle(() => accept(chunks.map(({ chunk }) => masker.mask(chunk as Buffer))), () => callback()),
    // What the masker held back (the possible start of a secret that never came) goes last,
    // once the log is back from a writer it was lent to.
    final: (callback) => void (lent?.back ?? Promise.resolve()).then(() => settle(() => accept([masker.flush()]).then(complete), () => callback())),
  });
  input.on('error', fail);

  async function lend(): Promise<CappedState> {
    if (lent) throw new Error(`Expected the log ${logPath} to be here to lend, but it is lent already`);
    if (input.writableEnded) throw new Error(`Expected the output of ${logPath} to go on, but it has ended`);
    let resolve = () => {};
    lent = { back: new Promise<void>((back) => (resolve = back)), resolve };
    // Everything written so far goes in first: the write in flight, then what waits behind it
    // (a write's callback starts the next one at once, so the stream is empty only when all are done).
    do await inFlight;
    while (input.writableLength > 0 && !input.destroyed);
    holding = true;
    await lastWrite;
    await closeSegments().catch(fail);
    const code = (failure as NodeJS.ErrnoException | undefined)?.code;
    return {
      totalBytes,
      lastHeadByte,
      lastByte,
      current,
      currentLength,
      turns: [...turns],
      made: [...made],
      held: masker.held(),
      ...(failure ? { failure: failure.message } : {}),
      ...(code !== undefined ? { failureCode: code } : {}),
    };
  }

  function resume(next: CappedState): void {
    if (!lent || !holding) throw new Error(`Expected the log ${logPath} to be lent, but it is here`);
    const { resolve } = lent;
    try {
      restore(next);
    } catch (error) {
      fail(error);
    } finally {
      // Whatever came back, what waits for the log goes on (and finish reports a failure).
      lent = undefined;
      holding = false;
      resolve();
    }
  }

  let finishing: Promise<CappedTotals> | undefined;
  return {
    input,
    lend,
    resume,
    finish: () =>
      (finishing ??= (async () => {
        input.end();
        await finished(input).catch(fail);
        await cleanUp();
        if (failure) throw failure;
        return { totalBytes, droppedBytes: Math.max(0, totalBytes - maxBytes), endsWithNewline: lastByte === NEWLINE };
      })()),
  };
}

/** `buffers` without their first `bytes` bytes. */
function skipBytes(buffers: readonly Buffer[], bytes: number): Buffer[] {
  let index = 0;
  for (let left = bytes; left > 0; index += 1) {
    const length = (buffers[index] as Buffer).length;
    if (left < length) return [(buffers[index] as Buffer).subarray(left), ...buffers.slice(index + 1)];
    left -= length;
  }
  return buffers.slice(index);
}

/** Resolves when `stream` can take more, or will never take more (closed after an error). */
function drained(stream: Writable): Promise<void> {
  const events = ['drain', 'error', 'close'];
  return new Promise((resolve) => {
    const done = () => {
      events.forEach((event) => stream.off(event, done));
      resolve();
    };
    events.forEach((event) => stream.on(event, done));
  });
}
