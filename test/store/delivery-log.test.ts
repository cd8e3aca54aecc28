import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Claim, DeliveryLog } from '../../src/store/delivery-log.js';
import { decodeSegment, encodeEntry } from '../../src/store/journal-frame.js';
import { cutIntoLastEntry } from '../helpers/journal-segment.js';
import { tempDir } from '../helpers/tmp.js';

const DAY = 24 * 60 * 60 * 1000;
const WINDOW = 7 * DAY;
const SEGMENT = /^\d{16}\.journal$/;

function sha256(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

function fresh(claim: Claim): Extract<Claim, { duplicate: false }> {
  if (claim.duplicate) throw new Error('Expected a fresh claim, got a duplicate');
  return claim;
}

async function segments(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => SEGMENT.test(name)).sort();
}

/** Every record in the folder's segments, oldest segment first, as written. */
async function records(dir: string): Promise<Array<{ hash: string; fields: Record<string, unknown> }>> {
  const found = [];
  for (const name of await segments(dir)) {
    for (const entry of decodeSegment(await readFile(join(dir, name))).entries) {
      if (entry.op === 'delete') throw new Error(`Expected only records in ${name}, found a removal`);
      found.push({ hash: entry.path, fields: JSON.parse(entry.data.toString('utf8')) as Record<string, unknown> });
    }
  }
  return found;
}

/** Logs a test opened: each is closed after the test, so that no segment's file handle is left to the garbage collector. */
const opened: DeliveryLog[] = [];

afterEach(async () => {
  await Promise.all(opened.splice(0).map((log) => log.close()));
});

async function openLog(dir: string, now: () => number = Date.now, legacyJournalDir?: string): Promise<DeliveryLog> {
  const log = new DeliveryLog({ dir, windowMs: WINDOW, now, ...(legacyJournalDir ? { legacyJournalDir } : {}) });
  opened.push(log);
  await log.open();
  return log;
}

/** A log of its own process: one key committed at `time`, then closed. */
async function commitAt(dir: string, key: string, time: number): Promise<void> {
  const log = await openLog(dir, () => time);
  await fresh(log.claim(key)).commit([]);
  await log.close();
}

describe('DeliveryLog', () => {
  it('treats a new key as fresh and the same key as a duplicate once committed, with its record on disk', async () => {
    const dir = join(await tempDir(), 'deliveries');
    const log = await openLog(dir);
    await fresh(log.claim('github:1:a')).commit(['run-1']);
    expect(log.claim('github:1:a')).toEqual({ duplicate: true, inFlight: false });
    expect(log.claim('github:1:b').duplicate).toBe(false);
    expect(log.size).toBe(1);
    // Durable when commit resolves: on disk without closing the log.
    const [only, ...more] = await records(dir);
    expect(more).toEqual([]);
    expect(only).toMatchObject({ hash: sha256('github:1:a'), fields: { key: 'github:1:a', runs: ['run-1'] } });
    expect(Math.abs(Date.parse(only?.fields.time as string) - Date.now())).toBeLessThan(60_000);
  });

  it('puts the records of deliveries committed together in one segment, not a file each', async () => {
    const dir = await tempDir();
    const log = await openLog(dir);
    await Promise.all(Array.from({ length: 50 }, (_, i) => fresh(log.claim(`github:${i}`)).commit([`run-${i}`])));
    expect(await readdir(dir)).toEqual(await segments(dir));
    expect(await segments(dir)).toHaveLength(1);
    expect((await records(dir)).map((entry) => entry.fields.key).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `github:${i}`).sort());
  });

  it('answers a second claim of a key still in flight as a duplicate in flight, so only one of two simultaneous deliveries wins', async () => {
    const log = await openLog(await tempDir());
    const first = fresh(log.claim('gitlab:x'));
    expect(log.claim('gitlab:x')).toEqual({ duplicate: true, inFlight: true });
    const committing = first.commit([]);
    expect(log.claim('gitlab:x')).toEqual({ duplicate: true, inFlight: true });
    await committing;
    expect(log.claim('gitlab:x')).toEqual({ duplicate: true, inFlight: false });
  });

  it('lets a released key be claimed again and leaves no record behind', async () => {
    const dir = join(await tempDir(), 'deliveries');
    const log = await openLog(dir);
    fresh(log.claim('github:1:a')).release();
    expect(log.size).toBe(0);
    await log.close();
    expect(await records(dir).catch(() => [])).toEqual([]);
    await fresh(log.claim('github:1:a')).commit(['run-2']);
    expect(log.claim('github:1:a').duplicate).toBe(true);
  });

  it('refuses to commit a claim twice or after release', async () => {
    const dir = await tempDir();
    const log = await openLog(dir);
    const claim = fresh(log.claim('k'));
    claim.release();
    await expect(claim.commit([])).rejects.toMatchObject({ code: 'CLAIM_SETTLED' });
    expect(log.claim('k').duplicate).toBe(false);
    const twice = fresh(log.claim('j'));
    await twice.commit(['run-1']);
    await expect(twice.commit(['run-2'])).rejects.toMatchObject({ code: 'CLAIM_SETTLED' });
    expect((await records(dir)).map((entry) => entry.fields.runs)).toEqual([['run-1']]);
  });

  it('still knows committed keys after a restart, also without a clean close', async () => {
    const dir = await tempDir();
    const before = await openLog(dir);
    await fresh(before.claim('github:1:a')).commit(['run-1']);
    await fresh(before.claim('github:1:b')).commit([]);
    fresh(before.claim('github:1:c')).release();

    const after = await openLog(dir);
    expect(after.size).toBe(2);
    expect(after.claim('github:1:a').duplicate).toBe(true);
    expect(after.claim('github:1:b').duplicate).toBe(true);
    expect(after.claim('github:1:c').duplicate).toBe(false);
  });

  it('ignores a record that a crash cut short, and keeps the ones before it', async () => {
    const dir = await tempDir();
    const before = await openLog(dir);
    await fresh(before.claim('whole')).commit([]);
    await fresh(before.claim('cut')).commit([]);
    const [segment] = await segments(dir);
    const file = join(dir, segment ?? 'missing');
    await cutIntoLastEntry(file, 5);

    const after = await openLog(dir);
    expect(after.size).toBe(1);
    expect(after.claim('whole').duplicate).toBe(true);
    expect(after.claim('cut').duplicate).toBe(false);
  });

  it('forgets records older than the window on open, and deletes a segment once all of it is older', async () => {
    const dir = await tempDir();
    const now = Date.now();
    await commitAt(dir, 'old', now - WINDOW - DAY);
    await commitAt(dir, 'recent', now - WINDOW + DAY);
    const [oldSegment, recentSegment] = await segments(dir);

    const after = await openLog(dir, () => now);
    expect(after.size).toBe(1);
    expect(after.claim('old').duplicate).toBe(false);
    expect(after.claim('recent').duplicate).toBe(true);
    expect(oldSegment).toBeDefined();
    expect(await segments(dir)).toEqual([recentSegment]);
  });

  it('forgets records older than the window on prune, and deletes their segment once the newer records in it are gone too', async () => {
    const dir = await tempDir();
    let now = Date.now();
    const log = await openLog(dir, () => now);
    await fresh(log.claim('first')).commit([]);
    await fresh(log.claim('also-first')).commit([]);
    // Each prune closes the segment being written: the records after it go to the next one.
    expect(await log.prune()).toBe(0);
    now += 3 * DAY;
    await fresh(log.claim('second')).commit([]);
    expect(await segments(dir)).toHaveLength(2);

    now += WINDOW - DAY;
    fresh(log.claim('first')).release();
    expect(await log.prune()).toBe(2);
    expect(log.size).toBe(1);
    expect((await records(dir)).map((entry) => entry.fields.key)).toEqual(['second']);
    expect(log.claim('second').duplicate).toBe(true);

    now += 3 * DAY;
    expect(await log.prune()).toBe(1);
    expect(await segments(dir)).toEqual([]);
    const after = await openLog(dir, () => now);
    expect(after.size).toBe(0);
  });

  it('keeps a segment while its newest record is inside the window, though older ones in it have left', async () => {
    const dir = await tempDir();
    const start = Date.now();
    let now = start;
    const log = await openLog(dir, () => now);
    await fresh(log.claim('early')).commit([]);
    now += 3 * DAY;
    await fresh(log.claim('late')).commit([]);
    expect(await segments(dir)).toHaveLength(1);

    now = start + WINDOW + DAY;
    expect(await log.prune()).toBe(1);
    expect(await segments(dir)).toHaveLength(1);
    const after = await openLog(dir, () => now);
    expect(after.claim('early').duplicate).toBe(false);
    expect(after.claim('late').duplicate).toBe(true);

    now = start + 3 * DAY + WINDOW + DAY;
    expect(await log.prune()).toBe(1);
    expect(await segments(dir)).toEqual([]);
  });

  it('keeps an expired key that is being claimed again, and then its new record', async () => {
    const dir = await tempDir();
    let now = Date.now();
    const log = await openLog(dir, () => now);
    await fresh(log.claim('again')).commit(['run-1']);
    now += WINDOW + DAY;
    const claim = fresh(log.claim('again'));
    expect(await log.prune()).toBe(0);
    await claim.commit(['run-2']);
    expect(await log.prune()).toBe(0);
    expect(log.claim('again').duplicate).toBe(true);
    expect((await records(dir)).map((entry) => entry.fields.runs)).toEqual([['run-2']]);
    const after = await openLog(dir, () => now);
    expect(after.claim('again').duplicate).toBe(true);
  });

  it('names records by the hash of the key, so hostile keys name no file', async () => {
    const root = await tempDir();
    const dir = join(root, 'deliveries');
    const log = await openLog(dir);
    const keys = ['github:1/../../escape', '..', '../..', '/etc/passwd', 'gitlab:\u00e9\u4e2d\u{1f680}:\\x', 'k'.repeat(300), `github:${'é/'.repeat(150)}`];
    for (const key of keys) await fresh(log.claim(key)).commit([]);
    await log.close();

    expect(await readdir(root)).toEqual(['deliveries']);
    expect(await readdir(dir)).toEqual(await segments(dir));
    const written = await records(dir);
    expect(written.map((entry) => entry.hash).sort()).toEqual(keys.map(sha256).sort());
    expect(written.map((entry) => entry.fields.key).sort()).toEqual([...keys].sort());
    const after = await openLog(dir);
    for (const key of keys) expect(after.claim(key).duplicate).toBe(true);
  });

  it('takes in the records of a version that kept a file per delivery, and its journal, then removes them', async () => {
    const root = await tempDir();
    const dir = join(root, 'deliveries');
    const legacyJournal = join(root, 'journal', 'deliveries');
    await mkdir(dir, { recursive: true });
    await mkdir(legacyJournal, { recursive: true });
    const file = (key: string) => join(dir, `${sha256(key)}.json`);
    await writeFile(file('placed'), `${JSON.stringify({ key: 'placed', time: new Date().toISOString(), runs: ['run-1'] }, null, 2)}\n`);
    await writeFile(file('half-written'), '{"key": "half-wr');
    await writeFile(file('empty'), '');
    await writeFile(file('expired'), '{}\n');
    const expiredAt = new Date(Date.now() - WINDOW - DAY);
    await utimes(file('expired'), expiredAt, expiredAt);
    await writeFile(join(dir, `.${sha256('crashed')}.json.0123456789ab.tmp`), '{"ke');
    await writeFile(join(dir, 'README.txt'), 'not a record');
    // Acknowledged, in the old journal, never put in place.
    const journaled = { op: 'create' as const, path: `${sha256('journaled')}.json`, data: Buffer.from('{"key": "journaled", "runs": []}\n') };
    await writeFile(join(legacyJournal, '0000000000000001.journal'), encodeEntry(journaled));

    const log = await openLog(dir, Date.now, legacyJournal);
    expect(log.size).toBe(4);
    for (const key of ['placed', 'half-written', 'empty', 'journaled']) expect(log.claim(key).duplicate, key).toBe(true);
    for (const key of ['expired', 'crashed']) expect(log.claim(key).duplicate, key).toBe(false);
    expect((await readdir(dir)).filter((name) => !SEGMENT.test(name))).toEqual(['README.txt']);
    expect(await readdir(join(root, 'journal'))).toEqual([]);
    expect((await records(dir)).find((entry) => entry.hash === sha256('placed'))?.fields).toMatchObject({ key: 'placed', runs: ['run-1'] });

    const after = await openLog(dir);
    expect(after.size).toBe(4);
    expect(after.claim('journaled').duplicate).toBe(true);
  });

  it('rejects a window that is not a positive number', () => {
    expect(() => new DeliveryLog({ dir: '/nonexistent', windowMs: 0 })).toThrow(/`windowMs`.*got `0`/);
  });
});
