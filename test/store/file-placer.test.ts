import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { FilePlacer } from '../../src/store/file-placer.js';
import { tempDir } from '../helpers/tmp.js';

describe('FilePlacer', () => {
  it('puts and deletes files on its thread, in order, making missing folders, and leaves no temporary file', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'old.json'), 'old');
    await writeFile(join(dir, 'gone.json'), 'gone');
    const placer = new FilePlacer();
    const failures = await placer.place([
      { file: join(dir, 'old.json'), op: 'put', data: 'new' },
      { file: join(dir, 'a', 'b', 'made.json'), op: 'put', data: Buffer.from('made') },
      { file: join(dir, 'gone.json'), op: 'delete', data: '' },
      { file: join(dir, 'never-there.json'), op: 'delete', data: '' },
      { file: join(dir, 'twice.json'), op: 'put', data: 'first' },
      { file: join(dir, 'twice.json'), op: 'put', data: 'second' },
    ]);

    expect(failures).toEqual([undefined, undefined, undefined, undefined, undefined, undefined]);
    expect(await readFile(join(dir, 'old.json'), 'utf8')).toBe('new');
    expect(await readFile(join(dir, 'a', 'b', 'made.json'), 'utf8')).toBe('made');
    expect(await readFile(join(dir, 'twice.json'), 'utf8')).toBe('second');
    expect((await stat(join(dir, 'twice.json'))).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).sort()).toEqual(['a', 'old.json', 'twice.json']);
  });

  it('sends only the bytes of a Buffer that is a view into a larger one, as a copy', async () => {
    const dir = await tempDir();
    const segment = Buffer.allocUnsafeSlow(16 * 1024).fill(120);
    segment.write('HELLO', 4);
    // The sizes of what is moved to the thread, taken before the move empties them.
    const moved: number[] = [];
    const postMessage = Worker.prototype.postMessage;
    const posted = vi.spyOn(Worker.prototype, 'postMessage').mockImplementation(function (this: Worker, message: unknown, transfer?: readonly unknown[]) {
      moved.push(...(transfer ?? []).map((buffer) => (buffer as ArrayBuffer).byteLength));
      postMessage.call(this, message, transfer as never);
    });
    try {
      const [failure] = await new FilePlacer().place([{ file: join(dir, 'view.json'), op: 'put', data: segment.subarray(4, 9) }]);
      expect(failure).toBeUndefined();
    } finally {
      posted.mockRestore();
    }
    expect(moved).toEqual([5]);
    expect(await readFile(join(dir, 'view.json'), 'utf8')).toBe('HELLO');
    // The source is neither detached nor changed.
    expect(segment.buffer.byteLength).toBe(16 * 1024);
    expect(segment.subarray(4, 9).toString()).toBe('HELLO');
  });

  it('reports a failure for its file with the file system code, and places the others', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a-file'), 'not a folder');
    await mkdir(join(dir, 'folder'));
    const failures = await new FilePlacer().place([
      { file: join(dir, 'a-file', 'inside.json'), op: 'put', data: 'x' },
      { file: join(dir, 'folder'), op: 'delete', data: '' },
      { file: join(dir, 'fine.json'), op: 'put', data: 'fine' },
    ]);

    expect(failures.map((failure) => (failure as { code?: string } | undefined)?.code)).toEqual(['ENOTDIR', 'EISDIR', undefined]);
    expect(await readFile(join(dir, 'fine.json'), 'utf8')).toBe('fine');
    expect((await readdir(dir)).sort()).toEqual(['a-file', 'fine.json', 'folder']);
  });

  it('rejects the batches of a thread that cannot start or exits, and starts a new thread for the next batch', async () => {
    const dir = await tempDir();
    const entry = join(dir, 'entry.mjs');
    const placer = new FilePlacer(entry);
    await expect(placer.place([{ file: join(dir, 'x.json'), op: 'put', data: 'x' }])).rejects.toMatchObject({ code: 'PLACER_FAILED' });

    await writeFile(entry, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(3));\n");
    await expect(placer.place([{ file: join(dir, 'y.json'), op: 'put', data: 'y' }])).rejects.toMatchObject({ code: 'PLACER_EXITED' });

    await writeFile(entry, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', ({ id, placements }) => parentPort.postMessage({ id, failures: placements.map(() => null) }));\n");
    expect(await placer.place([{ file: join(dir, 'z.json'), op: 'put', data: 'z' }])).toEqual([undefined]);
  });
});
