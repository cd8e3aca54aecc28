import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { queuedRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import type * as FolderSync from '../../src/store/folder-sync.js';

// Fault injection: the fsync of one file fails once with EIO, as after a failed write-back,
// and what the disk holds is then not the acknowledged content. Later fsyncs succeed, as on
// Linux, which reports a failed write-back once and marks the pages clean.
const failing = { file: '', open: false };
vi.mock('../../src/store/folder-sync.js', async (importOriginal) => {
  const real = await importOriginal<typeof FolderSync>();
  return {
    ...real,
    fsyncPath: async (path: string) => {
      if (path === failing.file) {
        failing.file = '';
        // A file that could not be opened: nothing written is lost.
        if (failing.open) throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE', syscall: 'open' });
        await writeFile(path, 'STALE');
        throw new real.WriteBackError(`fsync of ${path} failed`, Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO', syscall: 'fsync' }));
      }
      return real.fsyncPath(path);
    },
  };
});

const { JournaledFolder } = await import('../../src/store/journaled-folder.js');
const { RunStore } = await import('../../src/store/run-store.js');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a journal segment whose files could not be made durable', () => {
  it('is kept, with every later one, for the next start, which writes the files again', async () => {
    const dir = await tempDir();
    const root = join(dir, 'files');
    const journalDir = join(dir, 'journal');
    const first = join(root, 'first.json');
    const second = join(root, 'second.json');
    const kept: Error[] = [];
    const folder = new JournaledFolder({ root, journalDir, checkpointDelayMs: 50, placeDelayMs: 5, onKept: (error) => kept.push(error) });
    failing.file = first;
    await folder.write([{ file: first, data: 'ACKNOWLEDGED 1' }]);
    await until('the fold to fail', () => kept.length > 0);
    expect(kept[0]).toMatchObject({ code: 'EIO' });
    await folder.write([{ file: second, data: 'ACKNOWLEDGED 2' }]);

    // Many retry periods later, and after a shutdown, both segments are still there.
    await sleep(500);
    await folder.close();
    expect(await readFile(first, 'utf8')).toBe('STALE');
    expect((await readdir(journalDir)).length).toBe(2);

    const restarted = new JournaledFolder({ root, journalDir });
    expect(await restarted.replay()).toBe(2);
    expect(await readFile(first, 'utf8')).toBe('ACKNOWLEDGED 1');
    expect(await readFile(second, 'utf8')).toBe('ACKNOWLEDGED 2');
    expect(await readdir(journalDir)).toEqual([]);
  });

  it('is folded in later as usual when a file could not even be opened', async () => {
    const dir = await tempDir();
    const root = join(dir, 'files');
    const journalDir = join(dir, 'journal');
    const file = join(root, 'first.json');
    const kept: Error[] = [];
    const folder = new JournaledFolder({ root, journalDir, checkpointDelayMs: 50, placeDelayMs: 5, onKept: (error) => kept.push(error) });
    Object.assign(failing, { file, open: true });
    await folder.write([{ file, data: 'ACKNOWLEDGED' }]);

    await until('the failed fold to be tried again, and the segment deleted', async () => failing.file === '' && (await readdir(journalDir)).length === 0);
    expect(kept).toEqual([]);
    expect(await readFile(file, 'utf8')).toBe('ACKNOWLEDGED');
    failing.open = false;
  });

  it('makes the run store unready until a restart, and tells its owner', async () => {
    const dir = await tempDir();
    const told: Error[] = [];
    const store = new RunStore(join(dir, 'state'), join(dir, 'logs'), { onKept: (error) => told.push(error) });
    await store.loadAll();
    const run = queuedRun(store);
    const { id } = run;
    await store.create(run, Buffer.from('{}'));
    expect(store.lastFailure).toBeUndefined();
    failing.file = join(dir, 'state', 'runs', 'app', `${id}.json`);

    // The store's segments are folded in 30 s after they close, or at close.
    await expect(store.close()).rejects.toMatchObject({ code: 'EIO' });

    expect(told).toMatchObject([{ code: 'EIO' }]);
    expect(store.lastFailure).toMatchObject({ during: 'sync', error: { code: 'EIO' } });
    const file = join(dir, 'state', 'runs', 'app', `${id}.json`);
    expect(await readFile(file, 'utf8')).toBe('STALE');
    // The next start writes the record again from the journal it kept.
    const restarted = new RunStore(join(dir, 'state'), join(dir, 'logs'));
    expect(await restarted.loadAll()).toMatchObject({ records: [{ id, status: 'queued' }], problems: [] });
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ id, status: 'queued' });
  });
});
