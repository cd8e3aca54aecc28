import { constants, watch } from 'node:fs';
import { mkdir, readdir, readFile, readlink, rm, stat, utimes, writeFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeEntry } from '../../src/store/journal-frame.js';
import { JournaledFolder } from '../../src/store/journaled-folder.js';
import { cutIntoLastEntry } from '../helpers/journal-segment.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A folder for the files (with a subfolder), and one for the journal. */
async function folders() {
  const dir = await tempDir();
  await mkdir(join(dir, 'files', 'sub'), { recursive: true });
  return { root: join(dir, 'files'), journalDir: join(dir, 'journal') };
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(() => true, () => false);
}

describe('JournaledFolder', () => {
  it('shares one durable journal write among the writes that arrive together, and resolves each only after one that started after it', async () => {
    const { root, journalDir } = await folders();
    const log: string[] = [];
    let syncs = 0;
    // The journal's segments are open with O_DSYNC: its write is its fdatasync.
    const write = async (handle: FileHandle, frames: Buffer[]) => {
      const sync = ++syncs;
      log.push(`sync ${sync} start`);
      const written = await handle.writev(frames);
      await sleep(30);
      log.push(`sync ${sync} end`);
      return written;
    };
    const folder = new JournaledFolder({ root, journalDir, write });
    const change = (i: number) => {
      log.push(`write ${i}`);
      return folder.write([{ file: join(root, `${i}.json`), data: `{"n": ${i}}\n` }]).then(() => log.push(`done ${i}`));
    };
    const first = Array.from({ length: 20 }, (_, i) => change(i));
    await until('the first journal write to start', () => syncs === 1);
    const second = Array.from({ length: 20 }, (_, i) => change(20 + i));
    await Promise.all([...first, ...second]);
    await folder.place();

    expect(syncs).toBe(2);
    for (let i = 0; i < 40; i += 1) {
      const issued = log.indexOf(`write ${i}`);
      const done = log.indexOf(`done ${i}`);
      const covering = [1, 2].filter((sync) => log.indexOf(`sync ${sync} start`) > issued && log.indexOf(`sync ${sync} end`) < done);
      expect(covering, `write ${i} resolved after a journal write that started after it`).not.toEqual([]);
      expect(await readFile(join(root, `${i}.json`), 'utf8')).toBe(`{"n": ${i}}\n`);
    }
  });

  it('keeps the journal segment it writes open with O_DSYNC, so that a write returns only once it is on disk', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir });
    await folder.write([{ file: join(root, 'a.json'), data: 'a1' }]);
    const [segment] = await readdir(journalDir);
    const fds = await readdir('/proc/self/fd');
    const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).then((target) => ({ fd, target }), () => undefined)));
    const open = targets.find((entry) => entry?.target === join(journalDir, segment ?? 'missing'));
    expect(open, 'the segment is open').toBeDefined();
    // fdinfo's flags are octal; O_DSYNC is 010000 on Linux.
    const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(await readFile(`/proc/self/fdinfo/${open?.fd}`, 'utf8'))?.[1] ?? '0', 8);
    expect(flags & constants.O_DSYNC).toBe(constants.O_DSYNC);
    await folder.close();
  });

  it('rewrites at start what the journal holds, when a power cut lost the files: the last change of each file wins', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir });
    const [a, b, c] = ['a.json', 'sub/b.json', 'c.json'].map((name) => join(root, name)) as [string, string, string];
    await folder.write([{ file: a, data: 'a1' }]);
    await writeFile(c, 'c0');
    await folder.write([{ file: a, data: 'a2' }, { file: b, data: 'b1' }]);
    await folder.write([{ file: c, remove: true }]);
    await folder.place();
    // What a power cut may leave of files that were renamed into place but never fsynced.
    await rm(a);
    await writeFile(b, '');
    await writeFile(c, 'c0');

    const restarted = new JournaledFolder({ root, journalDir });
    expect(await restarted.replay()).toBe(3);
    expect(await readFile(a, 'utf8')).toBe('a2');
    expect(await readFile(b, 'utf8')).toBe('b1');
    expect(await exists(c)).toBe(false);
    expect(await readdir(journalDir)).toEqual([]);
  });

  it('ignores the end of a segment that a crash cut short, and keeps what came before', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir });
    const [kept, cut] = [join(root, 'kept.json'), join(root, 'cut.json')];
    await folder.write([{ file: kept, data: 'kept' }]);
    await folder.write([{ file: cut, data: 'never acknowledged' }]);
    await folder.place();
    const [segment] = await readdir(journalDir);
    const file = join(journalDir, segment ?? '');
    await cutIntoLastEntry(file, 3);
    await rm(kept);
    await rm(cut);

    expect(await new JournaledFolder({ root, journalDir }).replay()).toBe(1);
    expect(await readFile(kept, 'utf8')).toBe('kept');
    expect(await exists(cut)).toBe(false);
  });

  it('replays a created file of an earlier version\'s journal only where it is missing or empty, so its mtime is not renewed', async () => {
    const { root, journalDir } = await folders();
    const [aged, lost, emptied] = ['aged.json', 'lost.json', 'emptied.json'].map((name) => join(root, name)) as [string, string, string];
    // Earlier versions journaled a delivery record per file as `create`.
    await mkdir(journalDir, { recursive: true });
    await writeFile(join(journalDir, '0000000000000001.journal'), Buffer.concat(['aged.json', 'lost.json', 'emptied.json'].map((path) => encodeEntry({ op: 'create', path, data: Buffer.from('x') }))));
    for (const file of [aged, lost, emptied]) await writeFile(file, 'x');
    const old = new Date(Date.now() - 86_400_000);
    await utimes(aged, old, old);
    await rm(lost);
    await writeFile(emptied, '');

    await new JournaledFolder({ root, journalDir }).replay();
    expect(Math.round((await stat(aged)).mtimeMs)).toBe(old.getTime());
    expect(await readFile(lost, 'utf8')).toBe('x');
    expect(await readFile(emptied, 'utf8')).toBe('x');
  });

  it('folds a closed segment in after its delay and deletes it', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir, checkpointDelayMs: 20 });
    await folder.write([{ file: join(root, 'a.json'), data: 'a' }]);
    expect(await readdir(journalDir)).toHaveLength(1);
    await until('the segment to be folded in', async () => (await readdir(journalDir)).length === 0, 5_000);
    expect(await readFile(join(root, 'a.json'), 'utf8')).toBe('a');
    // A later write starts a new segment.
    await folder.write([{ file: join(root, 'b.json'), data: 'b' }]);
    expect(await readdir(journalDir)).toHaveLength(1);
  });

  it('puts acknowledged changes in place in batches: a file changed several times is written once, a new file removed in between never', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir, placeDelayMs: 60_000 });
    const [kept, gone, old] = ['kept.json', 'gone.json', 'old.json'].map((name) => join(root, name)) as [string, string, string];
    await writeFile(old, 'on disk before');
    const seen: string[] = [];
    const watcher = watch(root, (_event, name) => seen.push(String(name)));
    try {
      await folder.write([{ file: kept, data: 'v1' }, { file: gone, data: 'never placed', fresh: true }]);
      await folder.write([{ file: kept, data: 'v2' }]);
      await folder.write([{ file: gone, remove: true }, { file: old, remove: true }]);
      expect((await folder.read(kept))?.toString()).toBe('v2');
      expect(await folder.read(gone)).toBeUndefined();
      await sleep(50);
      expect(seen, 'nothing is written before the batch').toEqual([]);
      expect(await exists(kept)).toBe(false);

      await folder.place();
      await sleep(50);
      expect(await readFile(kept, 'utf8')).toBe('v2');
      expect(await exists(old)).toBe(false);
      expect(seen.filter((name) => name.includes('gone'))).toEqual([]);
      // One temporary file for kept.json: created, renamed (two events for the temporary name).
      expect(new Set(seen.filter((name) => name.includes('kept') && name.endsWith('.tmp'))).size).toBe(1);
    } finally {
      watcher.close();
    }
  });

  it('puts changes in place by itself after its delay, and at once when too much is waiting', async () => {
    const { root, journalDir } = await folders();
    const timed = new JournaledFolder({ root, journalDir, placeDelayMs: 20 });
    await timed.write([{ file: join(root, 'timed.json'), data: 't' }]);
    await until('the delayed batch', () => exists(join(root, 'timed.json')), 5_000);

    const other = await folders();
    const full = new JournaledFolder({ ...other, placeDelayMs: 60_000, maxWaitingBytes: 1_000 });
    await full.write([{ file: join(other.root, 'small.json'), data: 's' }]);
    await full.write([{ file: join(other.root, 'large.json'), data: 'x'.repeat(1_000) }]);
    await until('the batch started by size', async () => (await exists(join(other.root, 'small.json'))) && exists(join(other.root, 'large.json')), 5_000);
  });

  it('keeps a change that could not be put in place, with its segment, until it is in place; a newer change wins', async () => {
    const { root, journalDir } = await folders();
    const reports: Array<Error | undefined> = [];
    const folder = new JournaledFolder({ root, journalDir, placeDelayMs: 60_000, onPlaced: (failure) => reports.push(failure) });
    const file = join(root, 'sub', 'a.json');
    // A file where the folder should be: every write under it fails (ENOTDIR), even as root.
    await rm(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'sub'), 'not a folder');
    await folder.write([{ file, data: 'v1' }]);
    await expect(folder.place()).rejects.toMatchObject({ code: 'ENOTDIR' });
    await folder.write([{ file, data: 'v2' }]);
    await expect(folder.close()).rejects.toBeDefined();
    expect(await readdir(journalDir), 'the segment stays: its change is only in memory').toHaveLength(1);
    expect((await folder.read(file))?.toString()).toBe('v2');
    expect(reports.at(-1)).toMatchObject({ code: 'ENOTDIR' });

    await rm(join(root, 'sub'));
    await mkdir(join(root, 'sub'));
    await folder.close();
    expect(await readFile(file, 'utf8')).toBe('v2');
    expect(await readdir(journalDir)).toEqual([]);
    expect(reports.at(-1)).toBeUndefined();
  });

  it('puts a file written once in place at once on request, ahead of the batches', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir, placeDelayMs: 60_000 });
    const [payload, other] = [join(root, 'event.json'), join(root, 'other.json')];
    await folder.write([{ file: payload, data: 'payload', fresh: true }, { file: other, data: 'other' }]);
    await folder.writeThrough(payload);
    expect(await readFile(payload, 'utf8')).toBe('payload');
    expect(await exists(other), 'the rest waits for its batch').toBe(false);
    await folder.place();
    expect(await readFile(other, 'utf8')).toBe('other');
    expect(await readFile(payload, 'utf8')).toBe('payload');
  });

  it('removes a file put in place ahead of the batches when it is removed before its batch, also during that write', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir, placeDelayMs: 60_000 });
    const [first, second] = [join(root, 'first.json'), join(root, 'second.json')];
    await folder.write([{ file: first, data: 'payload', fresh: true }, { file: second, data: 'payload', fresh: true }]);
    await folder.writeThrough(first);
    await folder.write([{ file: first, remove: true }]);
    // Removed while its write ahead is still under way.
    const writing = folder.writeThrough(second);
    await folder.write([{ file: second, remove: true }]);
    await writing;
    await folder.place();
    expect(await exists(first)).toBe(false);
    expect(await exists(second)).toBe(false);
    expect(await folder.read(first)).toBeUndefined();
  });

  it('refuses a file outside its folder', async () => {
    const { root, journalDir } = await folders();
    const folder = new JournaledFolder({ root, journalDir });
    await expect(folder.write([{ file: join(root, '..', 'escape.json'), data: 'x' }])).rejects.toMatchObject({ code: 'OUTSIDE_FOLDER' });
    // Spelled under the folder but not normalized: each is refused, not resolved.
    for (const file of [`${root}/sub/../../escape.json`, `${root}/../escape.json`, `${root}/./a.json`, `${root}//a.json`, `${root}/sub/`, `${root}/`, `${root}x/a.json`]) {
      await expect(folder.write([{ file, data: 'x' }]), file).rejects.toMatchObject({ code: 'OUTSIDE_FOLDER' });
    }
    expect(await readdir(join(root, '..'))).not.toContain('escape.json');
  });
});
