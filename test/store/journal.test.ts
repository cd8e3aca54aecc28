import type { FileHandle } from 'node:fs/promises';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSegment, encodeEntry, type JournalEntry } from '../../src/store/journal-frame.js';
import { Journal } from '../../src/store/journal.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const entry = (i: number): JournalEntry => ({ op: 'put', path: `run-${i}.json`, data: Buffer.alloc(11_000, i % 256) });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function onlySegment(dir: string): Promise<string> {
  const names = await readdir(dir);
  expect(names).toHaveLength(1);
  return join(dir, names[0] ?? '');
}

describe("Journal: zeros written ahead of a segment's batches", () => {
  it('writes the batches from the third on over zeros, so that a durable write does not grow the file, and leaves none in a closed segment', async () => {
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
    await journal.append([entry(1)]).durable;
    const file = await onlySegment(dir);
    const two = 2 * encodeEntry(entry(0)).length;
    await until('zeros written ahead of the second batch', async () => (await stat(file)).size > two);
    for (let i = 2; i <= 200; i += 1) await journal.append([entry(i)]).durable;

    expect(sizes.slice(0, 2)).toEqual([[0, two / 2], [two / 2, two]]);
    expect(sizes.slice(2).filter(([before, batchEnd]) => batchEnd > before)).toEqual([]);
    // What a crash now would leave: the entries, then zeros, which are read as no entry.
    const open = await readFile(file);
    const decoded = decodeSegment(open);
    expect(decoded.entries).toEqual(Array.from({ length: 201 }, (_, i) => entry(i)));
    expect(open.length - decoded.ignoredBytes).toBe(end);
    expect(open.subarray(end).every((byte) => byte === 0)).toBe(true);
    // Zeros of at most twice what the segment holds, and never more than a MiB ahead.
    expect(open.length).toBeLessThanOrEqual(Math.max(2 * end, end + 1024 * 1024) + 64 * 1024);

    await journal.closeSegment();
    const closed = await readFile(file);
    expect(closed.length).toBe(end);
    expect(decodeSegment(closed)).toMatchObject({ ignoredBytes: 0 });
  });

  it('writes no zeros for a segment of one batch, the usual segment of a quiet daemon', async () => {
    const dir = await tempDir();
    const zeroed: number[] = [];
    const writeAhead = async (handle: FileHandle, buffers: Buffer[], position: number) => {
      zeroed.push(position);
      return handle.writev(buffers, position);
    };
    const journal = new Journal(dir, { writeAhead });
    await journal.append([entry(0)]).durable;
    await sleep(50);
    expect(zeroed).toEqual([]);
    expect((await stat(await onlySegment(dir))).size).toBe(encodeEntry(entry(0)).length);
    await journal.closeSegment();
  });

  it('lets a batch that reaches the zeros still being written wait for them, so that they never overwrite it', async () => {
    const dir = await tempDir();
    const events: string[] = [];
    const write = async (handle: FileHandle, frames: Buffer[]) => {
      events.push(`batch of ${frames.length} starts`);
      return handle.writev(frames);
    };
    // Zeros that take a while to reach the disk.
    const writeAhead = async (handle: FileHandle, buffers: Buffer[], position: number) => {
      events.push('zeros start');
      await sleep(100);
      const written = await handle.writev(buffers, position);
      events.push('zeros end');
      return written;
    };
    const journal = new Journal(dir, { write, writeAhead });
    const small = [entry(0), entry(1)];
    // Larger than what is written ahead: it reaches into the zeros.
    const big = Array.from({ length: 64 }, (_, i) => entry(2 + i));
    await journal.append([entry(0)]).durable;
    await journal.append([entry(1)]).durable;
    await journal.append(big).durable;
    await journal.closeSegment();

    expect(events).toEqual(['batch of 1 starts', 'batch of 1 starts', 'zeros start', 'zeros end', 'batch of 64 starts', 'zeros start', 'zeros end']);
    expect(decodeSegment(await readFile(await onlySegment(dir))).entries).toEqual([...small, ...big]);
  });

  it('cuts off what zeros a full disk let through and writes no more to that segment; its batches grow the file as before', async () => {
    const dir = await tempDir();
    let calls = 0;
    // A disk that fills up half-way through the first zeros.
    const writeAhead = async (handle: FileHandle, buffers: Buffer[], position: number) => {
      calls += 1;
      const bytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
      return handle.write(Buffer.alloc(bytes / 2), 0, bytes / 2, position);
    };
    const journal = new Journal(dir, { writeAhead });
    for (let i = 0; i < 2; i += 1) await journal.append([entry(i)]).durable;
    const file = await onlySegment(dir);
    const two = 2 * encodeEntry(entry(0)).length;
    await until('the short zeros cut off', async () => calls === 1 && (await stat(file)).size === two);
    for (let i = 2; i < 40; i += 1) await journal.append([entry(i)]).durable;
    await sleep(50);

    expect(calls).toBe(1);
    const bytes = await readFile(file);
    expect(decodeSegment(bytes)).toEqual({ entries: Array.from({ length: 40 }, (_, i) => entry(i)), ignoredBytes: 0 });
    await journal.closeSegment();
  });
});
