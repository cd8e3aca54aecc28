import { once } from 'node:events';
import { closeSync, createWriteStream, openSync, writeSync } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { createCappedOutput, type CappedOutput, type CappedState } from '../../src/log/capped-output.js';
import { syncSpillIo } from '../../src/log/spill-io.js';
import { droppedMarker, expectedLog } from '../helpers/capped-log.js';
import { tempDir } from '../helpers/tmp.js';
import { mulberry32 as random } from '../helpers/random.js';

/** Writes every chunk, waiting for 'drain' whenever `input` asks, as a well-behaved producer does. */
async function feed(input: Writable, chunks: Iterable<Buffer>, onChunk?: () => void): Promise<void> {
  for (const chunk of chunks) {
    if (!input.write(chunk)) await once(input, 'drain');
    onChunk?.();
  }
}

async function openCapped(maxBytes: number, secrets: readonly string[] = []) {
  const dir = await tempDir();
  const logPath = join(dir, 'run.log');
  const file = createWriteStream(logPath, { flags: 'a' });
  const capped = createCappedOutput({ file, logPath, maxBytes, secrets });
  return {
    dir,
    logPath,
    capped,
    /** Finishes, closes the file and returns what the log holds and what else is in the folder. */
    async close(): Promise<{ log: Buffer; files: string[]; result: Awaited<ReturnType<CappedOutput['finish']>> }> {
      const result = await capped.finish();
      file.end();
      await once(file, 'close');
      return { log: await readFile(logPath), files: await readdir(dir), result };
    },
  };
}

function* randomChunks(output: Buffer, next: () => number, largest: number): Generator<Buffer> {
  for (let offset = 0; offset < output.length; ) {
    const size = 1 + Math.floor(next() * largest);
    yield output.subarray(offset, offset + size);
    offset += size;
  }
}

function* numberedLines(totalBytes: number): Generator<Buffer> {
  const linesPerChunk = 4096;
  for (let line = 0, produced = 0; produced < totalBytes; ) {
    const lines: string[] = [];
    for (let i = 0; i < linesPerChunk; i += 1) lines.push(`line ${String(line++).padStart(9, '0')} of the deploy output\n`);
    const chunk = Buffer.from(lines.join('')).subarray(0, totalBytes - produced);
    produced += chunk.length;
    yield chunk;
  }
}

describe('createCappedOutput', () => {
  const cases: Array<{ name: string; maxBytes: number; output: string; chunkSize: number }> = [
    { name: 'keeps output under the cap byte for byte', maxBytes: 100, output: 'hello\nworld\n', chunkSize: 5 },
    { name: 'keeps output exactly at the cap byte for byte', maxBytes: 12, output: 'hello\nworld\n', chunkSize: 5 },
    { name: 'keeps output with no newline at all byte for byte', maxBytes: 12, output: 'no newline', chunkSize: 3 },
    { name: 'drops one byte from output one byte over the cap', maxBytes: 11, output: 'hello\nworld\n', chunkSize: 5 },
    { name: 'puts the marker on its own line when the head ends mid-line', maxBytes: 4, output: 'abcdefghij', chunkSize: 1 },
    { name: 'adds no blank line when the head ends with a newline', maxBytes: 12, output: 'first\nlong line in the middle\nlast\n', chunkSize: 7 },
    { name: 'keeps the whole of a single large write in the right places', maxBytes: 10, output: 'a'.repeat(5) + 'b'.repeat(50) + 'c'.repeat(5), chunkSize: 1000 },
    { name: 'keeps only the marker with a cap of zero', maxBytes: 0, output: 'anything\n', chunkSize: 4 },
    { name: 'keeps only the last byte with a cap of one', maxBytes: 1, output: 'anything\n', chunkSize: 4 },
    { name: 'writes nothing for no output', maxBytes: 10, output: '', chunkSize: 1 },
  ];

  it.each(cases)('$name', async ({ maxBytes, output, chunkSize }) => {
    const bytes = Buffer.from(output);
    const { capped, close } = await openCapped(maxBytes);
    const chunks = Array.from({ length: Math.ceil(bytes.length / chunkSize) }, (_, i) => bytes.subarray(i * chunkSize, (i + 1) * chunkSize));
    await feed(capped.input, chunks);
    const { log, files, result } = await close();
    expect(log.toString()).toBe(expectedLog(bytes, maxBytes).toString());
    expect(result).toEqual({ totalBytes: bytes.length, droppedBytes: Math.max(0, bytes.length - maxBytes), endsWithNewline: output === '' || output.endsWith('\n') });
    expect(files).toEqual(['run.log']);
  });

  it('caps the masked output: a secret split across writes, and one held back until the end', async () => {
    const { capped, close } = await openCapped(40, ['hunter2']);
    await feed(capped.input, ['pass hun', 'ter2 ok\n', 'x'.repeat(100), '\nlast: hunter2', ' and hun', 'ter2, then hunt'].map((text) => Buffer.from(text)));
    const { log, result } = await close();
    // "hunt" could have been the start of the secret: held back, and written at the end as it is.
    const masked = Buffer.from(`pass *** ok\n${'x'.repeat(100)}\nlast: *** and ***, then hunt`);
    expect(log.toString()).toBe(expectedLog(masked, 40).toString());
    expect(log.toString()).not.toContain('hunter2');
    expect(result).toEqual({ totalBytes: masked.length, droppedBytes: masked.length - 40, endsWithNewline: false });
  });

  it('spells out the marker with the exact dropped count', async () => {
    const { capped, close } = await openCapped(4);
    await feed(capped.input, [Buffer.from('abcdefghij')]);
    const { log } = await close();
    expect(log.toString()).toBe('ab\n[deployhook] ... 6 bytes of output dropped here (max_log_bytes is 4); the last 2 bytes follow ...\nij');
  });

  it('keeps what the log file already held before the output', async () => {
    const { capped, logPath, close } = await openCapped(6);
    const file = createWriteStream(logPath, { flags: 'a' });
    file.end('[deployhook] starting\n');
    await once(file, 'close');
    await feed(capped.input, [Buffer.from('0123456789')]);
    const { log } = await close();
    expect(log.toString()).toBe(`[deployhook] starting\n012\n${droppedMarker(4, 6)}789`);
  });

  it('keeps the exact first and last 32 KB of 20 MB through a 64 KB cap, with the exact dropped count', async () => {
    const maxBytes = 64 * 1024;
    const totalBytes = 20 * 1024 * 1024 + 123;
    const { capped, logPath, close } = await openCapped(maxBytes);
    await feed(capped.input, numberedLines(totalBytes));
    // The tail waits on disk, not in memory, until finish.
    await expect(access(`${logPath}.tail-a`)).resolves.toBeUndefined();
    await expect(access(`${logPath}.tail-b`)).resolves.toBeUndefined();
    const { log, files, result } = await close();
    const output = Buffer.concat([...numberedLines(totalBytes)]);
    const half = maxBytes / 2;
    const text = droppedMarker(totalBytes - maxBytes, maxBytes);
    expect(result).toEqual({ totalBytes, droppedBytes: totalBytes - maxBytes, endsWithNewline: output.at(-1) === 0x0a });
    expect(log.length).toBe(maxBytes + Buffer.byteLength(text) + (output[half - 1] === 0x0a ? 0 : 1));
    expect(log.subarray(0, half).equals(output.subarray(0, half))).toBe(true);
    expect(log.subarray(log.length - half).equals(output.subarray(output.length - half))).toBe(true);
    expect(log.subarray(half, log.length - half).toString().trim()).toBe(text.trim());
    expect(files).toEqual(['run.log']);
  });

  const seeds = [1, 2, 3, 42, 1234, 99991];
  const caps = [0, 1, 2, 7, 64, 100, 1000, 4097];
  const randomCases = seeds.flatMap((seed) => caps.map((maxBytes) => ({ seed, maxBytes })));

  it.each(randomCases)('matches the in-memory reference for random chunk sizes (seed $seed, cap $maxBytes)', async ({ seed, maxBytes }) => {
    const next = random(seed);
    const length = Math.floor(next() * 6 * (maxBytes + 10));
    const output = Buffer.from(Array.from({ length }, () => (next() < 0.05 ? 0x0a : 0x61 + Math.floor(next() * 26))));
    const { capped, close } = await openCapped(maxBytes);
    await feed(capped.input, randomChunks(output, next, Math.max(2, maxBytes)));
    const { log, files, result } = await close();
    expect(log.equals(expectedLog(output, maxBytes))).toBe(true);
    expect(result.droppedBytes).toBe(Math.max(0, length - maxBytes));
    expect(files).toEqual(['run.log']);
  });

  it('writes the same log when a pipeline ends input before finish is called', async () => {
    const { capped, close } = await openCapped(10);
    const output = Buffer.from('0123456789abcdefghij\n');
    await pipeline(Readable.from([output.subarray(0, 7), output.subarray(7)]), capped.input);
    const { log } = await close();
    expect(log.equals(expectedLog(output, 10))).toBe(true);
  });

  it('slows the producer down to the pace of a slow log file instead of buffering', async () => {
    const dir = await tempDir();
    let largestBacklog = 0;
    const file = new Writable({
      highWaterMark: 1024,
      write(_chunk, _encoding, callback) {
        setTimeout(callback, 2);
      },
    });
    const capped = createCappedOutput({ file, logPath: join(dir, 'run.log'), maxBytes: 16 * 1024 * 1024 });
    let refused = 0;
    const chunkBytes = 64 * 1024;
    // Three times what the cap's input buffers, so the producer must be held back.
    for (let i = 0; i < (3 * capped.input.writableHighWaterMark) / chunkBytes; i += 1) {
      if (!capped.input.write(Buffer.alloc(chunkBytes, 0x61))) {
        refused += 1;
        await once(capped.input, 'drain');
      }
      largestBacklog = Math.max(largestBacklog, capped.input.writableLength + file.writableLength);
    }
    await capped.finish();
    expect(refused).toBeGreaterThan(0);
    expect(largestBacklog).toBeLessThanOrEqual(capped.input.writableHighWaterMark + 2 * chunkBytes);
  });

  it('keeps memory bounded while 200 MB pass through a 100 MB cap', { timeout: 120_000 }, async () => {
    const chunkBytes = 64 * 1024;
    const maxBytes = 100 * 1024 * 1024;
    const { capped, logPath, close } = await openCapped(maxBytes);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sample = () => {
      peak = Math.max(peak, process.memoryUsage().rss);
    };
    // Fresh buffers each time: an implementation that kept them would show in RSS.
    function* fresh() {
      for (let i = 0; i < (2 * maxBytes) / chunkBytes; i += 1) yield Buffer.alloc(chunkBytes, 0x30 + (i % 10));
    }
    await feed(capped.input, fresh(), sample);
    const sampler = setInterval(sample, 5);
    const result = await capped.finish().finally(() => clearInterval(sampler));
    sample();
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
    expect(result).toEqual({ totalBytes: 2 * maxBytes, droppedBytes: maxBytes, endsWithNewline: false });
    expect((await stat(logPath)).size).toBe(maxBytes + Buffer.byteLength(droppedMarker(maxBytes, maxBytes)) + 1);
    expect((await close()).files).toEqual(['run.log']);
  });

  const failures = [
    {
      name: 'a log file that fails to write',
      open: async (dir: string) => ({
        logPath: join(dir, 'run.log'),
        file: new Writable({
          write(_chunk, _encoding, callback) {
            callback(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
          },
        }),
        message: /ENOSPC/,
      }),
    },
    {
      name: 'spill files that cannot be created',
      open: async (dir: string) => ({
        logPath: join(dir, 'missing', 'run.log'),
        file: new Writable({
          write(_chunk, _encoding, callback) {
            callback();
          },
        }),
        message: /ENOENT/,
      }),
    },
  ];

  it.each(failures)('reports $name through finish without crashing, and keeps draining input', async ({ open }) => {
    const dir = await tempDir();
    const { logPath, file, message } = await open(dir);
    const capped = createCappedOutput({ file, logPath, maxBytes: 100 });
    await feed(capped.input, Array.from({ length: 50 }, () => Buffer.alloc(1000, 0x61)));
    await expect(capped.finish()).rejects.toThrow(message);
    expect(await readdir(dir)).toEqual([]);
  });

  it('rejects a cap that is not a non-negative integer', () => {
    const file = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    expect(() => createCappedOutput({ file, logPath: 'run.log', maxBytes: -1 })).toThrow('Expected `maxBytes` to be a non-negative integer, got `-1`');
  });
});

/** A capped output of the same log, as the capture thread makes one: synchronous writes, going on from `state`. */
function borrower(logPath: string, maxBytes: number, secrets: readonly string[], state: CappedState) {
  const fd = openSync(logPath, 'a');
  const file = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      writeSync(fd, chunk);
      callback();
    },
  });
  const capped = createCappedOutput({ file, logPath, maxBytes, secrets, io: syncSpillIo, state });
  return {
    capped,
    async giveBack(): Promise<CappedState> {
      const back = await capped.lend();
      closeSync(fd);
      return back;
    },
  };
}

describe('a capped output lent to another writer and taken back', () => {
  const secret = 'hunter2-s3cret';
  const seeds = [7, 8, 9, 10, 11, 12, 13, 14];
  const caps = [0, 5, 64, 1000, 4097, 1_000_000];
  const cases = seeds.flatMap((seed) => caps.map((maxBytes) => ({ seed, maxBytes })));

  it.each(cases)('writes the log the lender alone would have, secrets split across the handovers masked (seed $seed, cap $maxBytes)', async ({ seed, maxBytes }) => {
    const next = random(seed);
    const pieces: string[] = [];
    for (let length = 0; length < 8 * (Math.min(maxBytes, 5000) + 500); ) {
      const piece = next() < 0.1 ? secret : next() < 0.1 ? '\n' : String.fromCharCode(0x61 + Math.floor(next() * 26)).repeat(1 + Math.floor(next() * 40));
      pieces.push(piece);
      length += piece.length;
    }
    const output = Buffer.from(pieces.join(''));
    const masked = Buffer.from(pieces.join('').replaceAll(secret, '***'));
    const { capped, logPath, close } = await openCapped(maxBytes, [secret]);
    // Lent (and taken back) at random points, sometimes inside a secret, sometimes for a long stretch.
    let writer: { capped: CappedOutput; giveBack?: () => Promise<CappedState> } = { capped };
    let lends = 0;
    for (const chunk of randomChunks(output, next, 30)) {
      if (next() < 0.15) {
        if (writer.giveBack) {
          capped.resume(await writer.giveBack());
          writer = { capped };
        } else {
          writer = borrower(logPath, maxBytes, [secret], await capped.lend());
          lends += 1;
        }
      }
      await feed(writer.capped.input, [chunk]);
    }
    if (writer.giveBack) capped.resume(await writer.giveBack());
    const { log, files, result } = await close();
    expect(lends).toBeGreaterThan(2);
    expect(log.toString()).toBe(expectedLog(masked, maxBytes).toString());
    expect(result.totalBytes).toBe(masked.length);
    expect(files).toEqual(['run.log']);
  });

  it('masks a secret whose first piece came before the lend and its rest after', async () => {
    const { capped, logPath, close } = await openCapped(1000, [secret]);
    await feed(capped.input, [Buffer.from('token=hunt')]);
    const lent = borrower(logPath, 1000, [secret], await capped.lend());
    await feed(lent.capped.input, [Buffer.from('er2-s3'), Buffer.from('cret ok\nnext=hunter2')]);
    capped.resume(await lent.giveBack());
    await feed(capped.input, [Buffer.from('-s3cret\n')]);
    const { log } = await close();
    expect(log.toString()).toBe('token=*** ok\nnext=***\n');
  });

  it('holds what is written to the lender until the log is back, then writes it after the borrower\'s output', async () => {
    const { capped, logPath, close } = await openCapped(1000);
    await feed(capped.input, [Buffer.from('one\n')]);
    const lent = borrower(logPath, 1000, [], await capped.lend());
    let written = false;
    capped.input.write('three\n', () => (written = true));
    await feed(lent.capped.input, [Buffer.from('two\n')]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(written).toBe(false);
    capped.resume(await lent.giveBack());
    const { log } = await close();
    expect(written).toBe(true);
    expect(log.toString()).toBe('one\ntwo\nthree\n');
  });

  it('takes back a failure the borrower met: what follows is discarded, and finish reports it', async () => {
    const { capped, close } = await openCapped(1000);
    await feed(capped.input, [Buffer.from('before\n')]);
    const state = await capped.lend();
    capped.resume({ ...state, failure: 'ENOSPC: no space left on device, write', failureCode: 'ENOSPC' });
    await feed(capped.input, [Buffer.from('after\n')]);
    await expect(close()).rejects.toMatchObject({ message: 'ENOSPC: no space left on device, write', code: 'ENOSPC' });
  });
});
