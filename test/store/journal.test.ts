import type { FileHandle } from 'node:fs/promises';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSegment, encodeEntry, type JournalEntry } from '../../src/store/journal-frame.js';
import { Journal } from '../../src/store/journal.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const entry = (i: number): JournalEntry => ({ op: 'put', path: `run-${i}.json`, data: Buffer.alloc(11_000, i) });

describe('Journal', () => {
  it('writes the batches after a segment\'s first over zeros written ahead, so that a durable write does not grow the file, and leaves no zeros in a closed segment', async () => {
    const dir = await tempDir();
    // For each batch: the file's size before its write, and where the batch ends.
    const sizes: Array<[number, number]> = [];
    let end = 0;
    const write = async (handle: FileHandle, frames: Buffer[]) => {
      const before = (await handle.stat()).size;
      const written = await handle.writev(frames);
      end += written.bytesWritten;
      sizes.push([before, end]);
      return written;
    };
    const journal = new Journal(dir, { write });
    await journal.append([entry(0)]).durable;
    const [name = ''] = await readdir(dir);
    const file = join(dir, name);
    const first = encodeEntry(entry(0)).length;
    await until('zeros written ahead of the first batch', async () => (await stat(file)).size > first);
    for (let i = 1; i <= 120; i += 1) await journal.append([entry(i)]).durable;

    expect(sizes[0]).toEqual([0, first]);
    expect(sizes.slice(1).filter(([before, batchEnd]) => batchEnd > before)).toEqual([]);
    // What a crash now would leave: the entries, then zeros, which are read as no entry.
    const open = await readFile(file);
    const decoded = decodeSegment(open);
    expect(decoded.entries).toEqual(Array.from({ length: 121 }, (_, i) => entry(i)));
    expect(open.length - decoded.ignoredBytes).toBe(end);
    expect(decoded.ignoredBytes).toBeGreaterThan(0);
    expect(open.subarray(end).every((byte) => byte === 0)).toBe(true);

    await journal.closeSegment();
    const closed = await readFile(file);
    expect(closed.length).toBe(end);
    expect(decodeSegment(closed)).toMatchObject({ ignoredBytes: 0 });
  });

  it('lets a batch that reaches the zeros still being written wait for them, so that they never overwrite it', async () => {
    const dir = await tempDir();
    const events: string[] = [];
    const write = async (handle: FileHandle, frames: Buffer[]) => {
      events.push(`batch of ${frames.length} starts`);
      return handle.writev(frames);
    };
    // Zeros that take a while to reach the disk.
    const writeAhead = async (handle: FileHandle, zeros: Buffer[], position: number) => {
      events.push('zeros start');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const written = await handle.writev(zeros, position);
      events.push('zeros end');
      return written;
    };
    const journal = new Journal(dir, { write, writeAhead });
    const first = entry(0);
    // Larger than what is written ahead: it reaches into the zeros.
    const big = Array.from({ length: 64 }, (_, i) => entry(1 + i));
    await journal.append([first]).durable;
    await journal.append(big).durable;
    await journal.closeSegment();

    expect(events).toEqual(['batch of 1 starts', 'zeros start', 'zeros end', 'batch of 64 starts', 'zeros start', 'zeros end']);
    const [name = ''] = await readdir(dir);
    expect(decodeSegment(await readFile(join(dir, name))).entries).toEqual([first, ...big]);
  });
});
