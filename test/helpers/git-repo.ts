import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Test Author',
  GIT_AUTHOR_EMAIL: 'author@example.test',
  GIT_COMMITTER_NAME: 'Test Author',
  GIT_COMMITTER_EMAIL: 'author@example.test',
  GIT_CONFIG_NOSYSTEM: '1',
};

/**
 * A ~/.gitconfig under which every fetch keeps its pack and two packs make `gc --auto`
 * repack. Each setting is stated, so an /etc/gitconfig cannot change what a test counts.
 */
export const REPACK_EVERY_FETCH = '[fetch]\n\tunpackLimit = 1\n[gc]\n\tauto = 6700\n\tautoPackLimit = 1\n[maintenance]\n\tauto = true\n[maintenance "gc"]\n\tenabled = true\n';

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('git', args, { cwd, env: GIT_ENV });
  return stdout.trim();
}

/**
 * A bare repository on disk (the remote a job fetches from) and a work tree that
 * commits and pushes to it, the way a developer would.
 */
export interface TestRemote {
  /** Path of the bare repository: use it as a job's `remote`. */
  bare: string;
  work: string;
  /** Writes the files, commits them on `branch` and pushes; returns the new commit. */
  commit(files: Record<string, string>, message?: string, branch?: string): Promise<string>;
  /** Deletes a file, commits and pushes; returns the new commit. */
  remove(path: string, branch?: string): Promise<string>;
}

export async function createRemote(root: string, name = 'remote'): Promise<TestRemote> {
  const bare = join(root, `${name}.git`);
  const work = join(root, `${name}-work`);
  await mkdir(bare, { recursive: true });
  await git(bare, 'init', '--bare', '--initial-branch=main', '--quiet');
  await mkdir(work, { recursive: true });
  await git(work, 'init', '--initial-branch=main', '--quiet');
  await git(work, 'remote', 'add', 'origin', bare);
  let counter = 0;

  async function switchTo(branch: string): Promise<void> {
    const current = await git(work, 'symbolic-ref', '--short', 'HEAD').catch(() => '');
    if (current === branch) return;
    const exists = await git(work, 'rev-parse', '--verify', '--quiet', `refs/heads/${branch}`).then(() => true, () => false);
    await git(work, 'checkout', '--quiet', ...(exists ? [branch] : ['-b', branch]));
  }

  async function commitAndPush(message: string, branch: string): Promise<string> {
    await git(work, 'commit', '--quiet', '--allow-empty', '-m', message);
    await git(work, 'push', '--quiet', '--force', 'origin', `HEAD:refs/heads/${branch}`);
    return git(work, 'rev-parse', 'HEAD');
  }

  return {
    bare,
    work,
    async commit(files, message, branch = 'main') {
      await switchTo(branch);
      counter += 1;
      for (const [path, content] of Object.entries(files)) {
        const full = join(work, path);
        await mkdir(dirname(full), { recursive: true });
        await writeFile(full, content);
        await git(work, 'add', '--', path);
      }
      return commitAndPush(message ?? `commit ${counter}`, branch);
    },
    async remove(path, branch = 'main') {
      await switchTo(branch);
      await git(work, 'rm', '--quiet', '--', path);
      return commitAndPush(`remove ${path}`, branch);
    },
  };
}
