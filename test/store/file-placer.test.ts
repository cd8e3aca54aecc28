import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FilePlacer } from '../../src/store/file-placer.js';
import { tempDir } from '../helpers/tmp.js';

describe('FilePlacer', () => {
  it('puts, creates and deletes files on its thread, in order, making missing folders, and leaves no temporary file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'old.json'), 'old');
    await writeFile(join(dir, 'gone.json'), 'gone');
    const placer = new FilePlacer();
    const failures = await placer.place([
      { file: join(dir, 'old.json'), op: 'put', data: 'new' },
      { file: join(dir, 'a', 'b', 'made.json'), op: 'create', data: Buffer.from('made') },
      { file: join(dir, 'gone.json'), op: 'delete', data: '' },
      { file: join(dir, 'never-there.json'), op: 'delete', data: '' },
      { file: join(dir, 'twice.json'), op: 'create', data: 'first' },
      { file: join(dir, 'twice.json'), op: 'create', data: 'second' },
    ]);

    expect(failures).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(await readFile(join(dir, 'old.json'), 'utf8')).toBe('new');
    expect(await readFile(join(dir, 'a', 'b', 'made.json'), 'utf8')).toBe('made');
    expect(await readFile(join(dir, 'twice.json'), 'utf8')).toBe('second');
    expect((await stat(join(dir, 'twice.json'))).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['a', 'old.json', 'twice.json']);
  });

  it('sends only the bytes of a Buffer that is a view into a larger one', async () => {
    const dir = await tempDir();
    const segment = Buffer.from('xxxxHELLOyyyy');
    const [failure] = await new FilePlacer().place([{ file: join(dir, 'view.json'), op: 'put', data: segment.subarray(4, 9) }]);

    expect(failure).toBeUndefined();
    expect(await readFile(join(dir, 'view.json'), 'utf8')).toBe('HELLO');
    expect(segment.toString()).toBe('xxxxHELLOyyyy');
  });

  it('reports a failure for its file with the file system code, and places the others', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a-file'), 'not a folder');
    await mkdir(join(dir, 'folder'));
    const failures = await new FilePlacer().place([
      { file: join(dir, 'a-file', 'inside.json'), op: 'put', data: 'x' },
      { file: join(dir, 'folder'), op: 'delete', data: '' },
      { file: join(dir, 'fine.json'), op: 'create', data: 'fine' },
    ]);

    expect(failures.map((failure) => (failure as { code?: string } | undefined)?.code)).toEqual(['ENOTDIR', 'EISDIR', undefined]);
    expect(await readFile(join(dir, 'fine.json'), 'utf8')).toBe('fine');
    expect((await readdir(dir)).sort()).toEqual(['a-file', 'fine.json', 'folder']);
  });

  it('rejects the batches a thread held when the thread cannot start, and tries a new thread for the next batch', async () => {
    const dir = await tempDir();
    const placer = new FilePlacer(join(dir, 'no-such-entry.js'));
    await expect(placer.place([{ file: join(dir, 'x.json'), op: 'put', data: 'x' }])).rejects.toMatchObject({ code: 'PLACER_FAILED' });
    await expect(placer.place([{ file: join(dir, 'y.json'), op: 'put', data: 'y' }])).rejects.toMatchObject({ code: 'PLACER_FAILED' });
    expect(await readdir(dir)).toEqual([]);
  });
});
