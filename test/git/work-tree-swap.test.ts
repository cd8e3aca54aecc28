import type * as fs from 'node:fs';
import { mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { holdsOnlyIndexed } from '../../src/git/work-tree.js';
import { git } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * What the next open of a folder named `roles` does first: a stand-in for a process of the job's
 * user that swaps a folder for a link between its parent's listing and its own read. The files
 * are real; only the moment is chosen, which a race outside the test cannot be made to hit.
 */
const swap = vi.hoisted(() => ({ before: undefined as (() => void) | undefined, opened: [] as string[] }));

vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof fs>();
  const first =
    <A extends [unknown, ...unknown[]], R>(open: (...args: A) => R) =>
    (...args: A): R => {
      const path = String(args[0]);
      if (/\/roles\/?$/.test(path) && swap.before !== undefined) {
        const before = swap.before;
        swap.before = undefined;
        before();
        swap.opened.push(path);
      }
      return open(...args);
    };
  return { ...actual, opendirSync: first(actual.opendirSync), openSync: first(actual.openSync) };
});

describe('holdsOnlyIndexed, with a folder swapped for a link while it runs', () => {
  it('does not read the folder the link leads to', async () => {
    const { renameSync, symlinkSync } = await vi.importActual<typeof fs>('node:fs');
    const tree = join(await tempDir(), 'tree');
    await mkdir(join(tree, 'roles', 'web'), { recursive: true });
    await writeFile(join(tree, 'site.yml'), 'hosts: all\n');
    await writeFile(join(tree, 'roles', 'web', 'main.yml'), 'tasks: []\n');
    await git(tree, 'init', '--quiet');
    await git(tree, 'add', '.');
    expect(holdsOnlyIndexed(tree)).toBe(true);

    // Elsewhere, the same names: read through the link, the tree would look as the index says.
    const elsewhere = join(await tempDir(), 'roles');
    swap.before = () => {
      renameSync(join(tree, 'roles'), elsewhere);
      symlinkSync(elsewhere, join(tree, 'roles'));
    };
    expect(holdsOnlyIndexed(tree)).toBe(false);
    expect(swap.before).toBeUndefined();
    expect(swap.opened).toHaveLength(1);
    expect(await readlink(join(tree, 'roles'))).toBe(elsewhere);
  });
});
