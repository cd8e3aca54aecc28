import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommitNotFoundError, GitSyncError, RunAbortedError } from '../../src/errors.js';
import { checkoutGitRunner } from '../../src/git/git-runner.js';
import { headCommit, syncCheckout, tidyCheckout } from '../../src/git/sync.js';
import { createRemote, git, REPACK_EVERY_FETCH } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { gitEnv, syncOptions } from './sync-fixture.js';

async function setup() {
  const root = await tempDir();
  const remote = await createRemote(root);
  return { root, remote, checkout: join(root, 'checkout'), env: await gitEnv(root) };
}

describe('syncCheckout', () => {
  it('clones on the first run and checks out exactly the commit', async () => {
    const { remote, checkout, env } = await setup();
    const first = await remote.commit({ 'app.txt': 'one\n' });
    await remote.commit({ 'app.txt': 'two\n' });

    const result = await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, env }));

    expect(result.sha).toBe(first);
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(first);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('one\n');
  });

  it('fetches a newer commit on a later run, and can go back to an older one', async () => {
    const { remote, checkout, env } = await setup();
    const first = await remote.commit({ 'app.txt': 'one\n', 'old.txt': 'old\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, env }));
    await remote.remove('old.txt');
    const second = await remote.commit({ 'app.txt': 'two\n' });

    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: second, env }));
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(second);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('two\n');
    expect(existsSync(join(checkout, 'old.txt'))).toBe(false);

    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, env }));
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(first);
    expect(await readFile(join(checkout, 'old.txt'), 'utf8')).toBe('old\n');
  });

  it('removes untracked and ignored files and undoes local edits', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ '.gitignore': '*.log\n', 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, env }));
    await writeFile(join(checkout, 'app.txt'), 'edited\n');
    await writeFile(join(checkout, 'untracked.txt'), 'left over\n');
    await writeFile(join(checkout, 'debug.log'), 'ignored\n');
    await mkdir(join(checkout, 'build'));
    await writeFile(join(checkout, 'build', 'out.bin'), 'artifact\n');

    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, env }));

    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('one\n');
    for (const leftover of ['untracked.txt', 'debug.log', 'build']) {
      expect(existsSync(join(checkout, leftover)), leftover).toBe(false);
    }
    expect(await git(checkout, 'status', '--porcelain', '--ignored')).toBe('');
  });

  it('rejects a commit that is not on the remote with CommitNotFoundError naming the sha', async () => {
    const { remote, checkout, env } = await setup();
    await remote.commit({ 'app.txt': 'one\n' });
    const missing = 'ab'.repeat(20);

    const sync = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: missing, env }));

    await expect(sync).rejects.toBeInstanceOf(CommitNotFoundError);
    await expect(sync).rejects.toThrow(missing);
  });

  it('fetches by id a commit that only a ref outside branches and tags points to', async () => {
    const { remote, checkout, env } = await setup();
    await remote.commit({ 'app.txt': 'one\n' });
    const pull = await remote.commit({ 'app.txt': 'proposed\n' }, 'proposal', 'proposal');
    await git(remote.bare, 'update-ref', 'refs/pull/1/head', pull);
    await git(remote.bare, 'update-ref', '-d', 'refs/heads/proposal');
    // A file:// URL makes git talk to upload-pack instead of copying the object store.
    const options = syncOptions({ remote: `file://${remote.bare}`, checkout, sha: pull, env });

    await syncCheckout(options);

    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(pull);
    expect(options.collected.text()).toContain(`$ git fetch --no-tags --progress --no-auto-maintenance -- origin ${pull}`);
  });

  it.each([
    { sha: 'main' },
    { sha: '--upload-pack=touch pwned' },
    { sha: 'AB'.repeat(20) },
    { sha: `${'ab'.repeat(20)}\n` },
  ])('rejects the sha $sha before git runs', async ({ sha }) => {
    const { remote, checkout, env } = await setup();
    const options = syncOptions({ remote: remote.bare, checkout, sha, env });

    await expect(syncCheckout(options)).rejects.toBeInstanceOf(GitSyncError);
    expect(existsSync(checkout)).toBe(false);
    expect(options.collected.text()).toBe('');
  });

  it('streams step lines and git messages to the output', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    const options = syncOptions({ remote: remote.bare, checkout, sha, env });

    await syncCheckout(options);

    const text = options.collected.text();
    expect(text).toContain(`$ git clone --no-checkout --progress -- ${remote.bare} ${checkout}\n`);
    expect(text).toContain('Cloning into');
    expect(text).toContain(`$ git checkout --force --detach ${sha} --\n`);
    expect(text).toContain(`HEAD is now at ${sha.slice(0, 7)}`);
    // A fresh clone holds only what the checkout wrote.
    expect(text).toContain("[deployhook] no `git clean`: the work tree holds exactly the files git's index names\n");
  });

  it('brings a warm checkout to a pushed branch in order: fetch, checkout, clean, each announced before its output; the ref the fetch wrote is read without git', async () => {
    const { remote, checkout, env } = await setup();
    const first = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, branch: 'main', env }));
    await writeFile(join(checkout, 'junk.txt'), 'left over\n');
    const second = await remote.commit({ 'app.txt': 'two\n' });
    const options = syncOptions({ remote: remote.bare, checkout, sha: second, branch: 'main', env });

    expect(await syncCheckout(options)).toEqual({ sha: second });

    const text = options.collected.text();
    const at = (line: string) => text.indexOf(line);
    expect(at('$ git fetch --prune --no-tags --progress --no-auto-maintenance -- origin')).toBe(0);
    expect(at(`   ${first.slice(0, 7)}..${second.slice(0, 7)}  main       -> origin/main\n`)).toBeGreaterThan(0);
    // The fetch wrote origin/main as a file: sh found it there, and git was not asked.
    expect(text).not.toContain('$ git show-ref');
    expect(at("$ git checkout --force --detach 'refs/remotes/origin/main^{commit}' --\n")).toBeGreaterThan(at('-> origin/main'));
    expect(at(`HEAD is now at ${second.slice(0, 7)}`)).toBeGreaterThan(at('$ git checkout'));
    expect(at('$ git clean -ffdx\n')).toBeGreaterThan(at('HEAD is now at'));
    expect(at('Removing junk.txt')).toBeGreaterThan(at('$ git clean'));
    expect(existsSync(join(checkout, 'junk.txt'))).toBe(false);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('two\n');
  });

  it("leaves git's housekeeping out of the sync, and tidyCheckout does it in the foreground", async () => {
    const root = await tempDir();
    const remote = await createRemote(root);
    const checkout = join(root, 'checkout');
    // git's default would do the repack in the background.
    const env = await gitEnv(root, REPACK_EVERY_FETCH);
    const packs = async () => Number(/^packs: (\d+)$/m.exec(await git(checkout, 'count-objects', '-v'))?.[1]);
    // A file:// URL: git talks to upload-pack and gets packs, instead of copying the object store.
    const url = `file://${remote.bare}`;
    await syncCheckout(syncOptions({ remote: url, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), branch: 'main', env }));
    expect(await packs()).toBe(1);
    const second = await remote.commit({ 'app.txt': 'two\n' });

    await syncCheckout(syncOptions({ remote: url, checkout, sha: second, branch: 'main', env }));
    expect(await packs()).toBe(2);

    const options = syncOptions({ remote: url, checkout, sha: second, env });
    await tidyCheckout(options);
    expect(await packs()).toBe(1);
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(second);
    expect(options.collected.text()).toBe('$ git -c gc.autoDetach=false -c maintenance.autoDetach=false maintenance run --auto --quiet\n');
  });

  it("tidyCheckout removes the commit-graph's lock a stopped housekeeping left, once git complains of it, and tidies", async () => {
    const root = await tempDir();
    const remote = await createRemote(root);
    const checkout = join(root, 'checkout');
    const env = await gitEnv(root, REPACK_EVERY_FETCH);
    const url = `file://${remote.bare}`;
    await syncCheckout(syncOptions({ remote: url, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), branch: 'main', env }));
    const second = await remote.commit({ 'app.txt': 'two\n' });
    await syncCheckout(syncOptions({ remote: url, checkout, sha: second, branch: 'main', env }));
    const lock = join(checkout, '.git', 'objects', 'info', 'commit-graph.lock');
    await writeFile(lock, '');

    const options = syncOptions({ remote: url, checkout, sha: second, env });
    await tidyCheckout(options);

    expect(options.collected.text()).toContain("commit-graph.lock': File exists");
    expect(options.collected.text()).toContain('[deployhook] removed the stale lock .git/objects/info/commit-graph.lock left by an interrupted run\n');
    expect(existsSync(lock)).toBe(false);
    expect(Number(/^packs: (\d+)$/m.exec(await git(checkout, 'count-objects', '-v'))?.[1])).toBe(1);
  });

  it('tidyCheckout fails rather than work in the repository above when the command broke .git', async () => {
    const { root, remote, checkout, env } = await setup();
    await git(root, 'init', '--quiet');
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), env }));
    await rm(join(checkout, '.git'), { recursive: true });
    await mkdir(join(checkout, '.git'));

    await expect(tidyCheckout(syncOptions({ remote: remote.bare, checkout, sha: 'ab'.repeat(20), env }))).rejects.toThrow(/^Git step "housekeeping" failed \(git maintenance\):\n.*not a git repository/s);
  });

  it('tidyCheckout names git\'s complaint when the housekeeping fails', async () => {
    const { root, remote, checkout } = await setup();
    const env = await gitEnv(root, '[maintenance "gc"]\n\tenabled = maybe\n');
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), env }));

    const error: unknown = await tidyCheckout(syncOptions({ remote: remote.bare, checkout, sha: 'ab'.repeat(20), env })).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(GitSyncError);
    expect((error as GitSyncError).message).toMatch(/^Git step "housekeeping" failed \(git maintenance\):\n.*bad boolean config value 'maybe' for 'maintenance\.gc\.enabled'/s);
  });

  it('tidyCheckout leaves alone a folder that is no longer a checkout, even inside another repository', async () => {
    const { root, remote, env } = await setup();
    await git(root, 'init', '--quiet');
    const checkout = join(root, 'gone');
    await mkdir(checkout);
    const options = syncOptions({ remote: remote.bare, checkout, sha: 'ab'.repeat(20), env });

    await tidyCheckout(options);

    expect(options.collected.text()).toBe('');
  });

  it('tidyCheckout stops once its signal is aborted', async () => {
    const { remote, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), env }));

    await expect(tidyCheckout(syncOptions({ remote: remote.bare, checkout, sha: 'ab'.repeat(20), env, signal: AbortSignal.abort('cancelled') }))).rejects.toBeInstanceOf(RunAbortedError);
  });

  it('stops at the first failing step, naming it with what git said, and runs none after it', async () => {
    const { root, remote, checkout, env } = await setup();
    const first = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, branch: 'main', env }));
    await writeFile(join(checkout, 'junk.txt'), 'left over\n');
    const gone = join(root, 'moved.git');
    const options = syncOptions({ remote: gone, checkout, sha: first, branch: 'main', env });

    const error: unknown = await syncCheckout(options).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(GitSyncError);
    expect((error as GitSyncError).step).toBe('fetch');
    expect((error as GitSyncError).message).toMatch(/^Git step "fetch" failed \(git fetch\):\n.*does not appear to be a git repository.*\ngit exited with code 128$/s);
    expect(options.collected.text()).not.toContain('$ git checkout');
    expect(existsSync(join(checkout, 'junk.txt'))).toBe(true);
  });

  it('names the last step when it fails, and logs git\'s exit code after its line as for the others', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    const options = syncOptions({ remote: remote.bare, checkout, sha, env });
    const error: unknown = await checkoutGitRunner(options)
      .steps([
        { label: 'look', args: ['rev-parse', '--verify', 'HEAD'] },
        { label: 'missing', args: ['rev-parse', '--verify', '--quiet', 'refs/heads/no-such-branch'] },
      ])
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(GitSyncError);
    expect((error as GitSyncError).step).toBe('missing');
    expect((error as GitSyncError).message).toBe('Git step "missing" failed (git rev-parse):\ngit exited with code 1');
    expect(options.collected.text()).toBe(`$ git rev-parse --verify HEAD\n${sha}\n$ git rev-parse --verify --quiet refs/heads/no-such-branch\ngit exited with code 1\n`);
  });

  it('names the branch when a warm checkout is asked for one the remote no longer has', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));

    const sync = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'gone', env }));

    await expect(sync).rejects.toBeInstanceOf(GitSyncError);
    await expect(sync).rejects.toThrow(/^Expected the branch "gone" on the remote .*, but it is not there/);
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
  });

  it('refuses a branch named HEAD, which would deploy the remote\'s default branch through origin/HEAD', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    const sync = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'HEAD', env }));
    await expect(sync).rejects.toThrow(/^Expected a branch, got "HEAD"/);
  });

  it("never takes a tag named like a missing branch or tag for it (git's lookup rules would)", async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    const planted = await remote.commit({ 'app.txt': 'planted\n' }, 'planted', 'elsewhere');
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    // Tags anyone who can push tags can make: fetched as refs/tags/refs/remotes/origin/gone and refs/tags/refs/tags/v9.
    await git(remote.bare, 'tag', 'refs/remotes/origin/gone', planted);
    await git(remote.bare, 'tag', 'refs/tags/v9', planted);

    const branch = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: planted, branch: 'gone', env }));
    await expect(branch).rejects.toThrow(/^Expected the branch "gone" on the remote .*, but it is not there/);
    const tag = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: planted, tag: 'v9', env }));
    await expect(tag).rejects.toThrow(/^Expected the tag "v9" on the remote .*, but it is not there/);
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('one\n');
  });

  it('asks git for a branch it finds only packed, and still deploys it', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    await git(checkout, 'pack-refs', '--all');
    expect(existsSync(join(checkout, '.git', 'refs', 'remotes', 'origin', 'main'))).toBe(false);
    const options = syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env });

    expect(await syncCheckout(options)).toEqual({ sha });

    const text = options.collected.text();
    expect(text.indexOf('$ git show-ref --verify --quiet -- refs/remotes/origin/main\n')).toBeGreaterThan(text.indexOf('$ git fetch'));
    expect(text.indexOf('$ git checkout')).toBeGreaterThan(text.indexOf('$ git show-ref'));
  });

  it('leaves a step out for a loose ref only when the file holds exactly one full commit id', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    const gitDir = join(checkout, '.git');
    const file = join(gitDir, 'refs', 'remotes', 'origin', 'probe');
    const elsewhere = join(checkout, '..', 'elsewhere');
    await writeFile(elsewhere, `${sha}\n`);
    // Whether `sh` ran the step, for each state of `.git/refs/remotes/origin/probe`.
    const runs = async (idLength = sha.length): Promise<boolean> => {
      const options = syncOptions({ remote: remote.bare, checkout, sha, env });
      await checkoutGitRunner(options).steps([{ label: 'probe', args: ['--version'], unlessLooseRef: { ref: 'refs/remotes/origin/probe', idLength } }]);
      return options.collected.text().includes('$ git --version\n');
    };
    const contents = async (text: string): Promise<boolean> => {
      await rm(file, { force: true, recursive: true });
      await writeFile(file, text);
      return runs();
    };

    expect(await contents(`${sha}\n`)).toBe(false);
    expect(await runs(64)).toBe(true);
    expect(await contents(sha)).toBe(true);
    expect(await contents(`${sha.slice(1)}\n`)).toBe(true);
    expect(await contents(`${sha.slice(1)}g\n`)).toBe(true);
    expect(await contents(`${sha.toUpperCase()}\n`)).toBe(true);
    expect(await contents(`${sha} \n`)).toBe(true);
    expect(await contents(`ref: refs/heads/main\n`)).toBe(true);
    expect(await contents('')).toBe(true);
    await rm(file);
    expect(await runs()).toBe(true);
    await mkdir(file);
    expect(await runs()).toBe(true);
    await rm(file, { recursive: true });
    await symlink(elsewhere, file);
    expect(await runs()).toBe(true);
    await rm(file);
    execFileSync('mkfifo', [file]);
    expect(await runs()).toBe(true);
    await rm(file);
    await writeFile(file, `${sha}\n`);
    await mkdir(join(gitDir, 'reftable'));
    expect(await runs()).toBe(true);
    await rm(join(gitDir, 'reftable'), { recursive: true });
    // The refs of a linked worktree's `.git` live in the folder `commondir` names.
    await writeFile(join(gitDir, 'commondir'), `${elsewhere}\n`);
    expect(await runs()).toBe(true);
    await rm(join(gitDir, 'commondir'));
    expect(await runs()).toBe(false);
  });

  it('reads HEAD without following a link or waiting on a FIFO a command left there', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    const options = syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env });
    await syncCheckout(options);
    const runner = checkoutGitRunner(options);
    expect(await headCommit(runner, checkout)).toBe(sha);
    const head = join(checkout, '.git', 'HEAD');
    await rm(head);
    execFileSync('mkfifo', [head]);
    // Neither the daemon nor git (which would wait on it too) reads it: no commit, and nothing hangs.
    expect(await headCommit(runner, checkout)).toBeUndefined();
    await rm(head);
    await symlink('/dev/zero', head);
    expect(await headCommit(runner, checkout)).toBeUndefined();
  });

  it('refuses a checkout whose .git is a link, and removes nothing where it points', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));
    // What a command in the checkout could leave: .git moved away, a link to another folder in its place.
    const elsewhere = join(checkout, '..', 'elsewhere');
    await rename(join(checkout, '.git'), elsewhere);
    await writeFile(join(elsewhere, 'index.lock'), 'not ours');
    await symlink(elsewhere, join(checkout, '.git'));

    const sync = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }));

    await expect(sync).rejects.toBeInstanceOf(GitSyncError);
    await expect(sync).rejects.toThrow(`Expected .git in the checkout ${checkout} to be a folder, but it is a link.`);
    expect(await readFile(join(elsewhere, 'index.lock'), 'utf8')).toBe('not ours');
  });

  it('removes lock files an interrupted git left in a warm checkout, says so, and syncs', async () => {
    const { remote, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), branch: 'main', env }));
    await writeFile(join(checkout, '.git', 'index.lock'), '');
    await writeFile(join(checkout, '.git', 'HEAD.lock'), '');
    const sha = await remote.commit({ 'app.txt': 'two\n' });

    const options = syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env });
    await syncCheckout(options);

    expect(options.collected.text()).toContain('[deployhook] removed the stale lock .git/index.lock left by an interrupted run\n');
    expect(options.collected.text()).toContain('[deployhook] removed the stale lock .git/HEAD.lock left by an interrupted run\n');
    expect(existsSync(join(checkout, '.git', 'index.lock'))).toBe(false);
    expect(existsSync(join(checkout, '.git', 'HEAD.lock'))).toBe(false);
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('two\n');
  });

  it("removes a ref's lock that a killed fetch left, once git complains of it, and syncs", async () => {
    const { remote, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), branch: 'main', env }));
    await writeFile(join(checkout, '.git', 'refs', 'remotes', 'origin', 'main.lock'), '');
    const sha = await remote.commit({ 'app.txt': 'two\n' });

    const options = syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env });
    expect(await syncCheckout(options)).toEqual({ sha });

    expect(options.collected.text()).toMatch(/cannot lock ref|main\.lock': File exists/);
    expect(options.collected.text()).toContain('[deployhook] removed the stale lock .git/refs/remotes/origin/main.lock left by an interrupted run\n');
    expect(existsSync(join(checkout, '.git', 'refs', 'remotes', 'origin', 'main.lock'))).toBe(false);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('two\n');
  });

  it("looks for those locks with PATH alone of the daemon's environment, which holds every job's secrets", async () => {
    const { root, remote, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'app.txt': 'one\n' }), branch: 'main', env }));
    await writeFile(join(checkout, '.git', 'refs', 'remotes', 'origin', 'main.lock'), '');
    const sha = await remote.commit({ 'app.txt': 'two\n' });
    // A `find` first on PATH that notes its environment, then does the work.
    const bin = join(root, 'bin');
    await mkdir(bin);
    const seen = join(root, 'find-env.txt');
    const realFind = execFileSync('sh', ['-c', 'command -v find']).toString().trim();
    await writeFile(join(bin, 'find'), `#!/bin/sh\nenv > ${seen}\nexec ${realFind} "$@"\n`, { mode: 0o755 });
    const saved = { PATH: process.env.PATH, SECRET: process.env.DEPLOYHOOK_TEST_JOB_SECRET };
    process.env.PATH = `${bin}:${saved.PATH ?? ''}`;
    process.env.DEPLOYHOOK_TEST_JOB_SECRET = 'a-job-secret-0123456789';
    try {
      expect(await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, branch: 'main', env }))).toEqual({ sha });
    } finally {
      process.env.PATH = saved.PATH;
      if (saved.SECRET === undefined) delete process.env.DEPLOYHOOK_TEST_JOB_SECRET;
      else process.env.DEPLOYHOOK_TEST_JOB_SECRET = saved.SECRET;
    }
    const names = (await readFile(seen, 'utf8')).split('\n').map((line) => line.split('=')[0] ?? '').filter((name) => name !== '');
    expect(names.filter((name) => !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(name))).toEqual(['PATH']);
  });

  it('refuses a checkout folder that holds other files and is not a git checkout', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await mkdir(checkout);
    await writeFile(join(checkout, 'precious.txt'), 'keep me\n');

    const sync = syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, env }));

    await expect(sync).rejects.toBeInstanceOf(GitSyncError);
    await expect(sync).rejects.toThrow(/holds other files/);
    expect(await readFile(join(checkout, 'precious.txt'), 'utf8')).toBe('keep me\n');
  });

  it('clones into an existing empty folder', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'app.txt': 'one\n' });
    await mkdir(checkout);

    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, env }));

    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
  });

  it('points origin at the configured remote when the config changed', async () => {
    const { root, remote, checkout, env } = await setup();
    const first = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, env }));
    const moved = await createRemote(root, 'moved');
    const second = await moved.commit({ 'app.txt': 'moved\n' });

    await syncCheckout(syncOptions({ remote: moved.bare, checkout, sha: second, env }));

    expect(await git(checkout, 'config', '--get', 'remote.origin.url')).toBe(moved.bare);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('moved\n');
  });

  it('points origin back at the configured remote when it was changed in the checkout by hand', async () => {
    const { root, remote, checkout, env } = await setup();
    const first = await remote.commit({ 'app.txt': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, env }));
    const elsewhere = await createRemote(root, 'elsewhere');
    await git(checkout, 'remote', 'set-url', 'origin', elsewhere.bare);
    const second = await remote.commit({ 'app.txt': 'two\n' });

    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: second, env }));

    expect(await git(checkout, 'config', '--get', 'remote.origin.url')).toBe(remote.bare);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('two\n');
  });
});

describe('syncCheckout: git clean only when the work tree holds more than the index names', () => {
  const NO_CLEAN = "[deployhook] no `git clean`: the work tree holds exactly the files git's index names\n";

  it('leaves git clean out of a clone and of later syncs while the tree holds only what git checked out', async () => {
    const { remote, checkout, env } = await setup();
    const first = await remote.commit({ '.gitignore': '*.log\n', 'site.yml': 'one\n', 'roles/old/main.yml': 'old\n' });
    const cold = syncOptions({ remote: remote.bare, checkout, sha: first, branch: 'main', env });
    await syncCheckout(cold);
    expect(cold.collected.text()).toContain(NO_CLEAN);

    // A commit that drops a folder's only file and adds another folder.
    await remote.remove('roles/old/main.yml');
    const second = await remote.commit({ 'site.yml': 'two\n', 'roles/new/main.yml': 'new\n' });
    const warm = syncOptions({ remote: remote.bare, checkout, sha: second, branch: 'main', env });
    await syncCheckout(warm);

    expect(warm.collected.text()).toContain(NO_CLEAN);
    expect(warm.collected.text()).not.toContain('$ git clean');
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(second);
    expect(existsSync(join(checkout, 'roles', 'old'))).toBe(false);
    expect(await git(checkout, 'status', '--porcelain', '--ignored')).toBe('');
  });

  it('cleans, after the checkout, what a command left: an ignored file, a file below, an empty folder', async () => {
    const { remote, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ '.gitignore': '*.log\n', 'roles/web/main.yml': 'one\n' }), env }));
    await writeFile(join(checkout, 'deploy.log'), 'ignored\n');
    await writeFile(join(checkout, 'roles', 'web', 'site.retry'), 'left over\n');
    await mkdir(join(checkout, 'build'));
    const second = await remote.commit({ 'roles/web/main.yml': 'two\n' });

    const after = syncOptions({ remote: remote.bare, checkout, sha: second, branch: 'main', env });
    await syncCheckout(after);

    const text = after.collected.text();
    expect(text).not.toContain(NO_CLEAN);
    expect(text.indexOf('$ git clean -ffdx\n')).toBeGreaterThan(text.indexOf('HEAD is now at'));
    expect(text).toContain('Removing deploy.log\n');
    expect(text).toContain('Removing roles/web/site.retry\n');
    expect(await git(checkout, 'status', '--porcelain', '--ignored')).toBe('');
    expect(existsSync(join(checkout, 'build'))).toBe(false);
  });

  it('runs git clean with the checkout, in the same process, for the 10 syncs after a look found something, then looks again', async () => {
    const { remote, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'site.yml': 'one\n' }), env }));
    const WITH_CHECKOUT = "[deployhook] `git clean` runs with the checkout: the look after one of this checkout's last 10 syncs called for it\n";
    /** One sync after the command left a file (or nothing): its output, and how many processes git's steps took. */
    const syncAfter = async (leftOver: boolean) => {
      if (leftOver) await writeFile(join(checkout, 'build.out'), 'left by the command\n');
      const groups: number[] = [];
      const options = syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'site.yml': `${String(Math.random())}\n` }), branch: 'main', env, onGroup: (pgid) => groups.push(pgid) });
      await syncCheckout(options);
      expect(existsSync(join(checkout, 'build.out'))).toBe(false);
      return { text: options.collected.text(), processes: new Set(groups).size };
    };

    // The look finds the file: clean runs after it, in a process of its own.
    const looked = await syncAfter(true);
    expect(looked.text).toContain('Removing build.out\n');
    expect(looked.text).not.toContain(WITH_CHECKOUT);
    expect(looked.processes).toBe(2);
    // The next 10: clean right after the checkout, in the same `sh`, whether anything was left or not.
    for (let sync = 1; sync <= 10; sync += 1) {
      const next = await syncAfter(sync % 2 === 1);
      expect(next.text, `sync ${sync}`).toContain(WITH_CHECKOUT);
      expect(next.text.indexOf('$ git clean -ffdx\n'), `sync ${sync}`).toBeGreaterThan(next.text.indexOf('HEAD is now at'));
      expect(next.text).not.toContain(NO_CLEAN);
      expect(next.processes).toBe(1);
    }
    // Then the tree is looked at again, and a look that finds something counts 10 more.
    const again = await syncAfter(false);
    expect(again.text).toContain(NO_CLEAN);
    expect(again.text).not.toContain('$ git clean');
    expect(again.processes).toBe(1);
    expect((await syncAfter(true)).processes).toBe(2);
    expect((await syncAfter(false)).text).toContain(WITH_CHECKOUT);
  });

  it("cleans what one of git's hooks wrote during the checkout", async () => {
    const { remote, checkout, env } = await setup();
    const first = await remote.commit({ 'site.yml': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, env }));
    await writeFile(join(checkout, '.git', 'hooks', 'post-checkout'), '#!/bin/sh\necho made > hooked.txt\n', { mode: 0o755 });

    const again = syncOptions({ remote: remote.bare, checkout, sha: await remote.commit({ 'site.yml': 'two\n' }), env });
    await syncCheckout(again);

    expect(again.collected.text()).toContain('Removing hooked.txt\n');
    expect(existsSync(join(checkout, 'hooked.txt'))).toBe(false);
  });

  it('undoes an edit to a tracked file without git clean', async () => {
    const { remote, checkout, env } = await setup();
    const sha = await remote.commit({ 'site.yml': 'one\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha, env }));
    await writeFile(join(checkout, 'site.yml'), 'edited by hand\n');

    const again = syncOptions({ remote: remote.bare, checkout, sha, env });
    await syncCheckout(again);

    expect(again.collected.text()).toContain(NO_CLEAN);
    expect(await readFile(join(checkout, 'site.yml'), 'utf8')).toBe('one\n');
    expect(await git(checkout, 'status', '--porcelain', '--ignored')).toBe('');
  });

  it("removes a dropped submodule's folder that a command filled, as git clean does", async () => {
    const { remote, checkout, env } = await setup();
    const first = await remote.commit({ 'site.yml': 'one\n' });
    await git(remote.work, 'update-index', '--add', '--cacheinfo', `160000,${first},vendor`);
    const withSubmodule = await remote.commit({ 'site.yml': 'two\n' });
    const checkedOut = syncOptions({ remote: remote.bare, checkout, sha: withSubmodule, branch: 'main', env });
    await syncCheckout(checkedOut);
    expect(checkedOut.collected.text()).toContain('$ git clean -ffdx\n');
    // git makes the submodule's folder empty; a command fills it without git.
    await writeFile(join(checkout, 'vendor', 'lib.yml'), 'vendored\n');

    await git(remote.work, 'rm', '--cached', '--quiet', 'vendor');
    const dropped = await remote.commit({ 'site.yml': 'three\n' });
    const last = syncOptions({ remote: remote.bare, checkout, sha: dropped, branch: 'main', env });
    await syncCheckout(last);

    expect(last.collected.text()).toContain('$ git clean -ffdx\n');
    expect(existsSync(join(checkout, 'vendor'))).toBe(false);
    expect(await git(checkout, 'status', '--porcelain', '--ignored')).toBe('');
  });

  it("cleans a file the command took out of git's index, which checkout leaves behind", async () => {
    const { remote, checkout, env } = await setup();
    await remote.commit({ 'site.yml': 'one\n', 'old.yml': 'old\n' });
    const first = await remote.commit({ 'site.yml': 'two\n' });
    await syncCheckout(syncOptions({ remote: remote.bare, checkout, sha: first, branch: 'main', env }));
    await git(checkout, 'rm', '--cached', '--quiet', 'old.yml');
    const second = await remote.remove('old.yml');

    const after = syncOptions({ remote: remote.bare, checkout, sha: second, branch: 'main', env });
    await syncCheckout(after);

    expect(after.collected.text()).toContain('$ git clean -ffdx\n');
    expect(existsSync(join(checkout, 'old.yml'))).toBe(false);
    expect(await git(checkout, 'status', '--porcelain', '--ignored')).toBe('');
  });
});
