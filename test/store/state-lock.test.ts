import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockStateDir } from '../../src/store/state-lock.js';
import { tempDir } from '../helpers/tmp.js';

describe('the state_dir lock', () => {
  it('is refused while its holder runs, and released whole', async () => {
    const dir = await tempDir();
    const release = await lockStateDir(dir);
    const lock = JSON.parse(await readFile(join(dir, 'deployhook.lock'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(process.pid);
    await expect(lockStateDir(dir)).rejects.toThrow(`Expected to be the only deployhook using state_dir ${dir}, but process ${process.pid} holds ${join(dir, 'deployhook.lock')}`);
    await release();
    expect(await readdir(dir)).toEqual([]);
    await (await lockStateDir(dir))();
  });

  it('takes over a lock whose process is gone, or that is not a lock at all, and leaves nothing aside', async () => {
    const dir = await tempDir();
    const path = join(dir, 'deployhook.lock');
    // pid 2^22 + 1 is above Linux's pid limit: no process has it.
    for (const stale of [JSON.stringify({ pid: 4_194_305, startTime: '1', bootId: 'x' }), '', 'garbage']) {
      await writeFile(path, stale);
      const release = await lockStateDir(dir);
      expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
      expect(await readdir(dir)).toEqual(['deployhook.lock']);
      await release();
    }
  });
});
