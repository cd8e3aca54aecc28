import { createHash } from 'node:crypto';
import { readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Claim, DeliveryLog } from '../../src/store/delivery-log.js';
import { tempDir } from '../helpers/tmp.js';

const DAY = 24 * 60 * 60 * 1000;
const WINDOW = 7 * DAY;

function sha256(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

function fresh(claim: Claim): Extract<Claim, { duplicate: false }> {
  if (claim.duplicate) throw new Error('Expected a fresh claim, got a duplicate');
  return claim;
}

async function age(file: string, ms: number): Promise<void> {
  const when = new Date(Date.now() - ms);
  await utimes(file, when, when);
}

/** The folder's entries, without the journal of recent commits (`.journal`). */
async function entries(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name !== '.journal');
}

async function openLog(dir: string, now: () => number = Date.now): Promise<DeliveryLog> {
  const log = new DeliveryLog({ dir, windowMs: WINDOW, now });
  await log.open();
  return log;
}

describe('DeliveryLog', () => {
  it('treats a new key as fresh and the same key as a duplicate once committed', async () => {
    const dir = join(await tempDir(), 'deliveries');
    const log = await openLog(dir);
    await fresh(log.claim('github:1:a')).commit(['run-1']);
    expect(log.claim('github:1:a')).toEqual({ duplicate: true });
    expect(log.claim('github:1:b').duplicate).toBe(false);
    expect(log.size).toBe(1);
    await log.place();
    const record = JSON.parse(await readFile(join(dir, `${sha256('github:1:a')}.json`), 'utf8')) as Record<string, unknown>;
    expect(record).toMatchObject({ key: 'github:1:a', runs: ['run-1'] });
    expect(typeof record.time).toBe('string');
  });

  it('answers a second claim of a key still in flight as a duplicate, so only one of two simultaneous deliveries wins', async () => {
    const log = await openLog(await tempDir());
    const first = fresh(log.claim('gitlab:x'));
    expect(log.claim('gitlab:x').duplicate).toBe(true);
    const committing = first.commit([]);
    expect(log.claim('gitlab:x').duplicate).toBe(true);
    await committing;
    expect(log.claim('gitlab:x').duplicate).toBe(true);
  });

  it('lets a released key be claimed again and leaves no record behind', async () => {
    const dir = await tempDir();
    const log = await openLog(dir);
    fresh(log.claim('github:1:a')).release();
    expect(log.size).toBe(0);
    expect(await readdir(dir)).toEqual([]);
    await fresh(log.claim('github:1:a')).commit(['run-2']);
    expect(log.claim('github:1:a').duplicate).toBe(true);
  });

  it('refuses to commit a claim twice or after release', async () => {
    const log = await openLog(await tempDir());
    const claim = fresh(log.claim('k'));
    claim.release();
    await expect(claim.commit([])).rejects.toMatchObject({ code: 'CLAIM_SETTLED' });
    expect(log.claim('k').duplicate).toBe(false);
  });

  it('still knows committed keys after a restart', async () => {
    const dir = await tempDir();
    const before = await openLog(dir);
    await fresh(before.claim('github:1:a')).commit(['run-1']);
    await fresh(before.claim('github:1:b')).commit([]);
    fresh(before.claim('github:1:c')).release();

    const after = new DeliveryLog({ dir, windowMs: WINDOW });
    expect(await after.open()).toBe(2);
    expect(after.claim('github:1:a').duplicate).toBe(true);
    expect(after.claim('github:1:b').duplicate).toBe(true);
    expect(after.claim('github:1:c').duplicate).toBe(false);
  });

  it('forgets records older than the window on open and removes their files', async () => {
    const dir = await tempDir();
    const before = await openLog(dir);
    await fresh(before.claim('old')).commit([]);
    await fresh(before.claim('recent')).commit([]);
    await before.place();
    await age(join(dir, `${sha256('old')}.json`), WINDOW + DAY);
    await age(join(dir, `${sha256('recent')}.json`), WINDOW - DAY);

    const after = new DeliveryLog({ dir, windowMs: WINDOW });
    expect(await after.open()).toBe(1);
    await after.place();
    expect(await entries(dir)).toEqual([`${sha256('recent')}.json`]);
    expect(after.claim('old').duplicate).toBe(false);
    expect(after.claim('recent').duplicate).toBe(true);
  });

  it('forgets records older than the window on prune, in memory and on disk', async () => {
    const dir = await tempDir();
    let now = Date.now();
    const log = await openLog(dir, () => now);
    await fresh(log.claim('first')).commit([]);
    now += 3 * DAY;
    await fresh(log.claim('second')).commit([]);

    now += WINDOW - DAY;
    fresh(log.claim('first')).release();
    expect(await log.prune()).toBe(1);
    expect(log.size).toBe(1);
    await log.place();
    expect(await entries(dir)).toEqual([`${sha256('second')}.json`]);
    expect(log.claim('second').duplicate).toBe(true);
  });

  it('does not prune the record of an expired key that is being claimed again', async () => {
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
    await log.place();
    expect(JSON.parse(await readFile(join(dir, `${sha256('again')}.json`), 'utf8'))).toMatchObject({ runs: ['run-2'] });
  });

  it('names files by the hash of the key, so hostile keys cannot leave the folder', async () => {
    const root = await tempDir();
    const dir = join(root, 'deliveries');
    const log = await openLog(dir);
    const keys = ['github:1/../../escape', '..', '../..', '/etc/passwd', 'gitlab:\u00e9\u4e2d\u{1f680}:\\x', 'k'.repeat(300), `github:${'é/'.repeat(150)}`];
    for (const key of keys) await fresh(log.claim(key)).commit([]);
    await log.place();

    expect((await entries(dir)).sort()).toEqual(keys.map((key) => `${sha256(key)}.json`).sort());
    expect(await readdir(root)).toEqual(['deliveries']);
    const after = await openLog(dir);
    for (const key of keys) expect(after.claim(key).duplicate).toBe(true);
  });

  it('loads a truncated or corrupt record file by its name and ignores unrelated files', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, `${sha256('half-written')}.json`), '{"key": "half-wr');
    await writeFile(join(dir, `${sha256('empty')}.json`), '');
    await writeFile(join(dir, 'README.txt'), 'not a record');
    const log = new DeliveryLog({ dir, windowMs: WINDOW });
    expect(await log.open()).toBe(2);
    expect(log.claim('half-written').duplicate).toBe(true);
    expect(log.claim('empty').duplicate).toBe(true);
  });

  it('removes temp files left over from an interrupted write on open', async () => {
    const dir = await tempDir();
    const record = `${sha256('done')}.json`;
    await writeFile(join(dir, record), '{}\n');
    await writeFile(join(dir, `.${sha256('crashed')}.json.0123456789ab.tmp`), '{"ke');
    const log = new DeliveryLog({ dir, windowMs: WINDOW });
    expect(await log.open()).toBe(1);
    expect(await readdir(dir)).toEqual([record]);
    expect(log.claim('crashed').duplicate).toBe(false);
  });

  it('rejects a window that is not a positive number', () => {
    expect(() => new DeliveryLog({ dir: '/nonexistent', windowMs: 0 })).toThrow(/`windowMs`.*got `0`/);
  });
});
