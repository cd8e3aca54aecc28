import { execFileSync } from 'node:child_process';
import type * as fs from 'node:fs';
import { mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { folderEntries, holdsOnlyIndexed } from '../../src/git/work-tree.js';
import { git } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * What the next open of a folder whose path ends in `name` does first: a stand-in for a process
 * of the job's user (or root) that changes the tree between a folder's listing and the read of a
 * folder below it. The files are real; only the moment is chosen, which a race outside the test
 * cannot be made to hit.
 */
const swap = vi.hoisted(() => ({ name: '', before: undefined as (() => void) | undefined, after: undefined as (() => void) | undefined, opened: [] as string[] }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof fs>();
  const first =
    <A extends [unknown, ...unknown[]], R>(open: (...args: A) => R) =>
    (...args: A): R => {
      const path = String(args[0]);
      const named = path.replace(/\/$/, '').endsWith(`/${swap.name}`);
      /** Runs the hook once, at the first open of the named folder, and notes that open. */
      const fire = (hook: 'before' | 'after') => {
        const run = swap[hook];
        if (run === undefined || !named) return;
        swap[hook] = undefined;
        run();
        swap.opened.push(path);
      };
      fire('before');
      const opened = open(...args);
      fire('after');
      return opened;
    };
  return { ...actual, opendirSync: first(actual.opendirSync), openSync: first(actual.openSync) };
});

/** A work tree whose index names site.yml and roles/web/main.yml (and `more` files, by path). */
async function workTree(more: Record<string, string> = {}): Promise<string> {
  const tree = join(await tempDir(), 'tree');
  for (const [path, text] of Object.entries({ 'site.yml': 'hosts: all\n', 'roles/web/main.yml': 'tasks: []\n', ...more })) {
    await mkdir(join(tree, path, '..'), { recursive: true });
    await writeFile(join(tree, path), text);
  }
  await git(tree, 'init', '--quiet');
  await git(tree, 'add', '.');
  expect(holdsOnlyIndexed(tree)).toBe(true);
  return tree;
}

describe('holdsOnlyIndexed, with a folder swapped for a link while it runs', () => {
  it('does not read the folder the link leads to', async () => {
    const { renameSync, symlinkSync } = await vi.importActual<typeof fs>('node:fs');
    const tree = await workTree();
    // Elsewhere, the same names: read through the link, the tree would look as the index says.
    const elsewhere = join(await tempDir(), 'roles');
    swap.opened = [];
    swap.name = 'roles';
    swap.before = () => {
      renameSync(join(tree, 'roles'), elsewhere);
      symlinkSync(elsewhere, join(tree, 'roles'));
    };
    expect(holdsOnlyIndexed(tree)).toBe(false);
    expect(swap.before).toBeUndefined();
    expect(swap.opened).toHaveLength(1);
    expect(await readlink(join(tree, 'roles'))).toBe(elsewhere);
  });

  it('reads a folder below one already open through that folder, not through a link put in its place', async () => {
    const { mkdirSync, renameSync, symlinkSync, writeFileSync } = await vi.importActual<typeof fs>('node:fs');
    const tree = await workTree();
    // `roles` is open when `web` below it is: `roles` moves away, and a link to a folder with a
    // file the index does not name takes its place. Through the path, the look would read that
    // folder; through `roles`' own descriptor it reads `roles` where it went, as it was listed.
    // (What is in the tree after the look is left for the command, as after `git clean`.)
    const planted = join(await tempDir(), 'planted');
    mkdirSync(join(planted, 'web'), { recursive: true });
    writeFileSync(join(planted, 'web', 'main.yml'), 'tasks: []\n');
    writeFileSync(join(planted, 'web', 'planted.txt'), 'x');
    swap.opened = [];
    swap.name = 'web';
    swap.before = () => {
      renameSync(join(tree, 'roles'), join(tree, '..', 'roles-moved'));
      symlinkSync(planted, join(tree, 'roles'));
    };
    expect(holdsOnlyIndexed(tree)).toBe(true);
    expect(swap.opened).toHaveLength(1);
    expect(swap.opened[0]).toMatch(/^\/proc\/self\/fd\/\d+\/web$/);
  });

  it("lists a folder (the checkout's .git) through the folder once it is open, not through a link put in its place", async () => {
    const { renameSync, symlinkSync } = await vi.importActual<typeof fs>('node:fs');
    const root = await tempDir();
    await mkdir(join(root, '.git'));
    await writeFile(join(root, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    const elsewhere = await tempDir();
    await writeFile(join(elsewhere, 'index.lock'), 'not git\'s');
    swap.opened = [];
    swap.name = '.git';
    swap.after = () => {
      renameSync(join(root, '.git'), join(root, 'moved'));
      symlinkSync(elsewhere, join(root, '.git'));
    };
    expect(folderEntries(join(root, '.git'))).toEqual(['HEAD']);
    expect(swap.opened).toHaveLength(1);
    expect(folderEntries(join(root, '.git'))).toBe('link');
    expect(folderEntries(join(root, 'missing'))).toBeUndefined();
    expect(folderEntries(join(root, 'moved', 'HEAD'))).toBeUndefined();
    expect(folderEntries(join(root, 'moved', 'HEAD', '.git'))).toBeUndefined();
  });

  it('says no for a file system mounted below the tree once the mounts were read, before reading it', async () => {
    const tree = await workTree({ 'roles/mnt/file': 'x' });
    const point = join(tree, 'roles', 'mnt');
    swap.opened = [];
    swap.name = 'roles';
    swap.before = () => {
      // Needs root, as the other mount tests: fails loudly where mounting is not allowed.
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', point]);
      execFileSync('sh', ['-c', 'echo x > "$1"', 'sh', join(point, 'file')]);
    };
    try {
      expect(holdsOnlyIndexed(tree)).toBe(false);
      expect(swap.opened).toHaveLength(1);
    } finally {
      execFileSync('umount', ['-l', point]);
    }
    expect(holdsOnlyIndexed(tree)).toBe(true);
  });
});
