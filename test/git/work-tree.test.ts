import { execFile } from 'node:child_process';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { holdsOnlyIndexed } from '../../src/git/work-tree.js';
import { git } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { mountTmpfs } from '../helpers/tmpfs.js';

const unmount = (dir: string) => promisify(execFile)('umount', [dir]);

/** A git work tree of a few files in git's index, two folders deep, with a link and a name that is not UTF-8; `init` options such as `--object-format=sha256`. */
async function workTree(...init: string[]): Promise<string> {
  const tree = join(await tempDir(), 'tree');
  await mkdir(join(tree, 'roles', 'web'), { recursive: true });
  await writeFile(join(tree, 'site.yml'), 'hosts: all\n');
  await writeFile(join(tree, 'roles', 'web', 'main.yml'), 'tasks: []\n');
  await symlink('roles/web/main.yml', join(tree, 'main.yml'));
  await writeFile(Buffer.concat([Buffer.from(`${tree}/roles/name-`), Buffer.from([0xfe])]), 'x');
  await git(tree, 'init', '--quiet', ...init);
  await git(tree, 'add', '.');
  return tree;
}

describe('holdsOnlyIndexed', () => {
  it.each([['2'], ['3'], ['4']])('says yes for a tree that holds only what an index of version %s names', async (version) => {
    const tree = await workTree();
    await git(tree, 'update-index', '--index-version', version);
    expect(holdsOnlyIndexed(tree)).toBe(true);
  });

  it('reads an index of a repository with SHA-256 object ids', async () => {
    const tree = await workTree('--object-format=sha256');
    expect(holdsOnlyIndexed(tree)).toBe(true);
    await writeFile(join(tree, 'roles', 'extra'), 'x');
    expect(holdsOnlyIndexed(tree)).toBe(false);
  });

  it.each([
    ['a file added in a folder below', (tree: string) => writeFile(join(tree, 'roles', 'web', 'extra.retry'), 'x')],
    ['an ignored file at the top', async (tree: string) => {
      await writeFile(join(tree, '.git', 'info', 'exclude'), '*.log\n');
      await writeFile(join(tree, 'debug.log'), 'x');
    }],
    ['an empty folder', (tree: string) => mkdir(join(tree, 'build'))],
    ['a nested repository', (tree: string) => git(join(tree, 'roles'), 'init', '--quiet', 'vendor')],
    ['a tracked file removed', (tree: string) => rm(join(tree, 'site.yml'))],
    ['a tracked file renamed', (tree: string) => rename(join(tree, 'site.yml'), join(tree, 'site.yaml'))],
    ['a file replaced by a folder of the same name', async (tree: string) => {
      await rm(join(tree, 'site.yml'));
      await mkdir(join(tree, 'site.yml'));
    }],
    ['a file replaced by a link', async (tree: string) => {
      await rm(join(tree, 'site.yml'));
      await symlink('roles/web/main.yml', join(tree, 'site.yml'));
    }],
    ['a link replaced by a file', async (tree: string) => {
      await rm(join(tree, 'main.yml'));
      await writeFile(join(tree, 'main.yml'), 'x');
    }],
    ['a file with a name one byte apart from a tracked one', (tree: string) => writeFile(Buffer.concat([Buffer.from(`${tree}/roles/name-`), Buffer.from([0xff])]), 'x')],
    ['a file taken out of the index', (tree: string) => git(tree, 'rm', '--cached', '--quiet', 'site.yml')],
    ['a submodule in the index', (tree: string) => git(tree, 'update-index', '--add', '--cacheinfo', `160000,${'a'.repeat(40)},vendor`)],
    ['a file skipped in the work tree', (tree: string) => git(tree, 'update-index', '--skip-worktree', 'site.yml')],
    ['a file added with intent', async (tree: string) => {
      await writeFile(join(tree, 'new.yml'), 'x');
      await git(tree, 'add', '--intent-to-add', 'new.yml');
    }],
    ['no index', (tree: string) => rm(join(tree, '.git', 'index'))],
    ['an index cut short', async (tree: string) => {
      const index = join(tree, '.git', 'index');
      await writeFile(index, (await import('node:fs')).readFileSync(index).subarray(0, 100));
    }],
  ])('says no with %s', async (_what, change) => {
    const tree = await workTree();
    expect(holdsOnlyIndexed(tree)).toBe(true);

    await change(tree);

    expect(holdsOnlyIndexed(tree)).toBe(false);
  });

  it("does not mind a file's content or mode, nor what is in the top folder's .git", async () => {
    const tree = await workTree();
    await writeFile(join(tree, 'site.yml'), 'hosts: web\n', { mode: 0o700 });
    await writeFile(join(tree, '.git', 'new-file'), 'x');
    expect(holdsOnlyIndexed(tree)).toBe(true);
  });

  it('does not follow a link to a folder', async () => {
    const tree = await workTree();
    const elsewhere = await tempDir();
    await writeFile(join(elsewhere, 'outside.txt'), 'x');
    await symlink(elsewhere, join(tree, 'outside'));
    await git(tree, 'add', 'outside');
    expect(holdsOnlyIndexed(tree)).toBe(true);
  });

  it('reads a checkout whose own path is a link, and says no for a .git that is one', async () => {
    const tree = await workTree();
    const linked = join(await tempDir(), 'current');
    await symlink(tree, linked);
    expect(holdsOnlyIndexed(linked)).toBe(true);
    const moved = join(await tempDir(), 'git');
    await rename(join(tree, '.git'), moved);
    await symlink(moved, join(tree, '.git'));
    expect(holdsOnlyIndexed(tree)).toBe(false);
  });

  it('reads an index of 500 files, and says no for one of 501', async () => {
    const tree = await workTree();
    const indexed = async () => (await git(tree, 'ls-files')).split('\n').length;
    await mkdir(join(tree, 'many'));
    for (let file = await indexed(); file < 500; file += 1) await writeFile(join(tree, 'many', String(file)), '');
    await git(tree, 'add', 'many');
    expect(await indexed()).toBe(500);
    expect(holdsOnlyIndexed(tree)).toBe(true);
    await writeFile(join(tree, 'many', 'one-more'), '');
    await git(tree, 'add', 'many');
    expect(holdsOnlyIndexed(tree)).toBe(false);
  });

  it('says no for a missing folder', async () => {
    expect(holdsOnlyIndexed(join(await tempDir(), 'missing'))).toBe(false);
  });

  it('says no while a file system is mounted below the tree', async () => {
    // Reading a mount (a FUSE one) could hold the daemon's event loop.
    const tree = await workTree();
    await mountTmpfs(join(tree, 'roles', 'mnt'), 64);
    await writeFile(join(tree, 'roles', 'mnt', 'file'), 'x');
    await git(tree, 'add', 'roles/mnt/file');
    expect(holdsOnlyIndexed(tree)).toBe(false);
    await unmount(join(tree, 'roles', 'mnt'));
    await writeFile(join(tree, 'roles', 'mnt', 'file'), 'x');
    expect(holdsOnlyIndexed(tree)).toBe(true);
  });
});
