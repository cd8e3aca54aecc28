import { execFile } from 'node:child_process';
import { chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { listWorkTree } from '../../src/git/work-tree.js';
import { git } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

const unmount = (dir: string) => promisify(execFile)('umount', [dir]);

/** A git work tree of a few committed files, two folders deep. */
async function workTree(): Promise<string> {
  const tree = join(await tempDir(), 'tree');
  await mkdir(join(tree, 'roles', 'web'), { recursive: true });
  await writeFile(join(tree, 'site.yml'), 'hosts: all\n');
  await writeFile(join(tree, 'roles', 'web', 'main.yml'), 'tasks: []\n');
  await git(tree, 'init', '--quiet');
  await git(tree, 'add', '.');
  return tree;
}

function digest(tree: string, limit?: number): string | undefined {
  return listWorkTree(tree, limit)?.digest;
}

describe('listWorkTree', () => {
  it('reads the same tree alike, and a plain tree as plain', async () => {
    const tree = await workTree();
    const first = listWorkTree(tree);
    expect(first).toEqual({ digest: expect.stringMatching(/^[A-Za-z0-9+/]{43}= [A-Za-z0-9+/]{43}=$/), plain: true });
    expect(listWorkTree(tree)).toEqual(first);
  });

  it.each([
    ['a file added in a folder below', (tree: string) => writeFile(join(tree, 'roles', 'web', 'extra.retry'), 'x')],
    ['a file added at the top', (tree: string) => writeFile(join(tree, 'debug.log'), 'x')],
    ['an empty folder added', (tree: string) => mkdir(join(tree, 'build'))],
    ['a file removed', (tree: string) => rm(join(tree, 'site.yml'))],
    ['a file renamed', (tree: string) => rename(join(tree, 'site.yml'), join(tree, 'site.yaml'))],
    [
      'a file replaced by a folder of the same name',
      async (tree: string) => {
        await rm(join(tree, 'site.yml'));
        await mkdir(join(tree, 'site.yml'));
        await writeFile(join(tree, 'site.yml', 'inside'), 'x');
      },
    ],
    [
      'a file replaced by a link of the same name',
      async (tree: string) => {
        await rm(join(tree, 'site.yml'));
        await symlink('roles/web/main.yml', join(tree, 'site.yml'));
      },
    ],
  ])('changes with %s', async (_what, change) => {
    const tree = await workTree();
    const before = digest(tree);

    await change(tree);

    expect(digest(tree)).toBeDefined();
    expect(digest(tree)).not.toBe(before);
  });

  it("does not change with a file's content or mode, nor with anything in the top folder's .git", async () => {
    const tree = await workTree();
    const before = digest(tree);

    await writeFile(join(tree, 'site.yml'), 'hosts: web\n');
    await chmod(join(tree, 'roles', 'web', 'main.yml'), 0o755);
    await writeFile(join(tree, '.git', 'new-file'), 'x');

    expect(digest(tree)).toBe(before);
  });

  it('tells apart names that differ only in bytes that are not UTF-8', async () => {
    const tree = await workTree();
    const name = (last: number) => Buffer.concat([Buffer.from(`${tree}/name-`), Buffer.from([last])]);
    await writeFile(name(0xfe), 'x');
    const before = digest(tree);

    await rename(name(0xfe), name(0xff));

    expect(digest(tree)).not.toBe(before);
  });

  it('does not follow a link to a folder', async () => {
    const tree = await workTree();
    const elsewhere = await tempDir();
    await symlink(elsewhere, join(tree, 'outside'));
    const before = digest(tree);

    await writeFile(join(elsewhere, 'new.txt'), 'x');

    expect(digest(tree)).toBe(before);
  });

  it('gives no listing of a tree with more entries than the limit', async () => {
    const tree = await workTree();
    // site.yml, roles, roles/web, roles/web/main.yml
    expect(digest(tree, 4)).toBeDefined();
    await writeFile(join(tree, 'fifth'), 'x');
    expect(digest(tree, 4)).toBeUndefined();
  });

  it('gives no listing of a missing folder', async () => {
    expect(listWorkTree(join(await tempDir(), 'missing'))).toBeUndefined();
  });

  it('says a tree with an empty folder, a nested .git or a submodule in the index is not plain', async () => {
    const empty = await workTree();
    await mkdir(join(empty, 'roles', 'db'));
    const nested = await workTree();
    await mkdir(join(nested, 'vendor', '.git'), { recursive: true });
    await writeFile(join(nested, 'vendor', '.git', 'HEAD'), 'x');
    const submodule = await workTree();
    await git(submodule, 'update-index', '--add', '--cacheinfo', `160000,${'a'.repeat(40)},vendor`);

    expect(listWorkTree(empty)?.plain).toBe(false);
    expect(listWorkTree(nested)?.plain).toBe(false);
    expect(listWorkTree(submodule)?.plain).toBe(false);
    expect(listWorkTree(await workTree())?.plain).toBe(true);
  });

  it('gives no listing of a tree with a file system mounted below it, and lists it again once it is gone', async () => {
    // Reading a mount (a FUSE one) could hold the daemon's event loop.
    const tree = await workTree();
    const before = digest(tree);
    expect(before).toBeDefined();
    await mountTmpfs(join(tree, 'roles', 'mnt'), 64);
    expect(listWorkTree(tree)).toBeUndefined();
    await unmount(join(tree, 'roles', 'mnt'));
    await rm(join(tree, 'roles', 'mnt'), { recursive: true });
    expect(digest(tree)).toBe(before);
  });

  it("changes with git's index, and gives no listing without one", async () => {
    const tree = await workTree();
    const before = digest(tree);

    await git(tree, 'rm', '--cached', '--quiet', 'site.yml');
    expect(digest(tree)).not.toBe(before);

    await rm(join(tree, '.git', 'index'));
    expect(listWorkTree(tree)).toBeUndefined();
  });
});
