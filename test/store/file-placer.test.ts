import { once } from 'node:events';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { FilePlacer } from '../../src/store/file-placer.js';
import { tempDir } from '../helpers/tmp.js';

/** The threads placers post batches to, in the order of their first batch (the real Worker's postMessage, watched). */
function watchThreads(): { threads: Worker[]; restore(): void } {
  const threads: Worker[] = [];
  const postMessage = Worker.prototype.postMessage;
  const spy = vi.spyOn(Worker.prototype, 'postMessage').mockImplementation(function (this: Worker, message: unknown, transfer?: readonly unknown[]) {
    if (!threads.includes(this)) threads.push(this);
    postMessage.call(this, message, transfer as never);
  });
  return { threads, restore: () => spy.mockRestore() };
}

describe('FilePlacer', () => {
  it.each([
    ['on its thread', 0],
    ['on the calling thread, when a batch is small and no thread runs', 8],
  ])('puts and deletes files %s, in order, making missing folders, and leaves no temporary file', async (_where, inlineMax) => {
    const dir = await tempDir();
    await writeFile(join(dir, 'old.json'), 'old');
    await writeFile(join(dir, 'gone.json'), 'gone');
    const placer = new FilePlacer({ inlineMax });
    const watch = watchThreads();
    const failures = await placer.place([
      { file: join(dir, 'old.json'), op: 'put', data: 'new' },
      { file: join(dir, 'a', 'b', 'made.json'), op: 'put', data: Buffer.from('made') },
      { file: join(dir, 'gone.json'), op: 'delete', data: '' },
      { file: join(dir, 'never-there.json'), op: 'delete', data: '' },
      { file: join(dir, 'twice.json'), op: 'put', data: 'first' },
      { file: join(dir, 'twice.json'), op: 'put', data: 'second' },
    ]);

    watch.restore();
    expect(watch.threads).toHaveLength(inlineMax === 0 ? 1 : 0);
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
      const [failure] = await new FilePlacer({ inlineMax: 0 }).place([{ file: join(dir, 'view.json'), op: 'put', data: segment.subarray(4, 9) }]);
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
    const failures = await new FilePlacer({ inlineMax: 0 }).place([
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
    const placer = new FilePlacer({ entry, inlineMax: 0 });
    await expect(placer.place([{ file: join(dir, 'x.json'), op: 'put', data: 'x' }])).rejects.toMatchObject({ code: 'PLACER_FAILED' });

    await writeFile(entry, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', () => process.exit(3));\n");
    await expect(placer.place([{ file: join(dir, 'y.json'), op: 'put', data: 'y' }])).rejects.toMatchObject({ code: 'PLACER_EXITED' });

    await writeFile(entry, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', ({ id, placements }) => parentPort.postMessage({ id, failures: placements.map(() => null) }));\n");
    expect(await placer.place([{ file: join(dir, 'z.json'), op: 'put', data: 'z' }])).toEqual([undefined]);
  });

  it('ends its thread once it has had nothing to do for idleMs, counted from the last answer, and starts a new one for the next batch', async () => {
    const dir = await tempDir();
    const idleMs = 2_500;
    const placer = new FilePlacer({ idleMs, inlineMax: 0 });
    const watch = watchThreads();
    try {
      expect(await placer.place([{ file: join(dir, 'one.json'), op: 'put', data: 'one' }])).toEqual([undefined]);
      const [thread] = watch.threads;
      if (thread === undefined) throw new Error('expected the batch to reach a thread');
      let exitedAt: number | undefined;
      const exited = once(thread, 'exit').then(() => void (exitedAt = performance.now()));
      // A second batch before the first check: the thread's idle time starts again from its answer.
      await sleep(idleMs / 5);
      expect(await placer.place([{ file: join(dir, 'two.json'), op: 'put', data: 'two' }])).toEqual([undefined]);
      const lastAnswer = performance.now();
      expect(watch.threads).toEqual([thread]);
      await exited;
      expect(exitedAt! - lastAnswer).toBeGreaterThanOrEqual(idleMs - 50);

      expect(await placer.place([{ file: join(dir, 'three.json'), op: 'put', data: 'three' }])).toEqual([undefined]);
      expect(watch.threads).toHaveLength(2);
      expect(watch.threads[1]).not.toBe(thread);
      expect(await readFile(join(dir, 'three.json'), 'utf8')).toBe('three');
      expect((await readdir(dir)).sort()).toEqual(['one.json', 'three.json', 'two.json']);
      await once(watch.threads[1]!, 'exit');
    } finally {
      watch.restore();
    }
  });

  it('puts a small batch in place on the calling thread while no thread runs, a larger one on a thread, and then small ones there too, in order', async () => {
    const dir = await tempDir();
    const placer = new FilePlacer({ inlineMax: 2 });
    const watch = watchThreads();
    try {
      expect(await placer.place([{ file: join(dir, 'a.json'), op: 'put', data: 'a1' }, { file: join(dir, 'b.json'), op: 'put', data: 'b' }])).toEqual([undefined, undefined]);
      expect(await readFile(join(dir, 'a.json'), 'utf8')).toBe('a1');
      expect(watch.threads).toEqual([]);

      const large = placer.place(['c', 'd', 'e'].map((name) => ({ file: join(dir, `${name}.json`), op: 'put' as const, data: name })));
      // Asked for while the larger batch is on the thread: it goes there too, and lands after it.
      const small = placer.place([{ file: join(dir, 'c.json'), op: 'put', data: 'c2' }, { file: join(dir, 'b.json'), op: 'delete', data: '' }]);
      expect(await large).toEqual([undefined, undefined, undefined]);
      expect(await small).toEqual([undefined, undefined]);
      expect(watch.threads).toHaveLength(1);
      expect(await readFile(join(dir, 'c.json'), 'utf8')).toBe('c2');
      expect((await readdir(dir)).sort()).toEqual(['a.json', 'c.json', 'd.json', 'e.json']);

      // A failure on the calling thread is reported for its file, as the thread reports it.
      await writeFile(join(dir, 'plain'), 'not a folder');
      const other = new FilePlacer({ inlineMax: 2 });
      const [failure] = await other.place([{ file: join(dir, 'plain', 'inside.json'), op: 'put', data: 'x' }]);
      expect(failure).toMatchObject({ code: 'ENOTDIR' });
      expect(watch.threads).toHaveLength(1);
    } finally {
      watch.restore();
    }
  });

  it('puts a batch of large files on a thread though it has few files', async () => {
    const dir = await tempDir();
    const placer = new FilePlacer();
    const watch = watchThreads();
    try {
      const large = Buffer.alloc(200 * 1024, 120);
      expect(await placer.place([{ file: join(dir, 'small.json'), op: 'put', data: '{}' }])).toEqual([undefined]);
      expect(watch.threads).toEqual([]);
      expect(await placer.place([{ file: join(dir, 'a.json'), op: 'put', data: large }, { file: join(dir, 'b.json'), op: 'put', data: large.toString() }])).toEqual([undefined, undefined]);
      expect(watch.threads).toHaveLength(1);
      expect((await stat(join(dir, 'b.json'))).size).toBe(200 * 1024);
    } finally {
      watch.restore();
    }
  });

  it('never ends a thread that has a batch to answer, however long the batch takes', async () => {
    const dir = await tempDir();
    const entry = join(dir, 'entry.mjs');
    // Answers its first batch at once and every later one after 1.2 s, well past the idle time.
    await writeFile(
      entry,
      "import { parentPort } from 'node:worker_threads';\nlet seen = 0;\nparentPort.on('message', ({ id, placements }) => {\n  const answer = () => parentPort.postMessage({ id, failures: placements.map(() => null) });\n  if (seen++ === 0) answer(); else setTimeout(answer, 1200);\n});\n",
    );
    const idleMs = 300;
    const placer = new FilePlacer({ entry, idleMs, inlineMax: 0 });
    const watch = watchThreads();
    try {
      expect(await placer.place([{ file: join(dir, 'one.json'), op: 'put', data: '1' }])).toEqual([undefined]);
      const [thread] = watch.threads;
      if (thread === undefined) throw new Error('expected the batch to reach a thread');
      let exited = false;
      thread.once('exit', () => void (exited = true));
      // Sent before the idle check, answered long after it.
      expect(await placer.place([{ file: join(dir, 'two.json'), op: 'put', data: '2' }])).toEqual([undefined]);
      expect(exited).toBe(false);
      expect(watch.threads).toEqual([thread]);
      await once(thread, 'exit');
    } finally {
      watch.restore();
    }
  });
});
