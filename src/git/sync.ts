import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, readlink, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { CommitNotFoundError, GitSyncError } from '../errors.js';
import { printable } from '../log/printable.js';
import { runAsUser } from '../runner/run-as-user.js';
import type { ProcessUser } from '../runner/process-launcher.js';
import { COMMIT_PATTERN } from '../providers/validate.js';
import { checkoutGitRunner, throwIfAborted, withoutUrlPasswords, type CheckoutGitOptions } from './git-runner.js';
import type { GitRunner, GitStep } from './git-runner.js';
import { readPlainFileStart } from './plain-file.js';
import { pointOriginAt, rememberOrigin } from './point-origin.js';
import { folderEntries, holdsOnlyIndexed } from './work-tree.js';

export type { GitAuth } from './git-env.js';

/**
 * `remote` is the URL or path from config (never from a payload); `checkout` the absolute
 * path of the checkout folder, created on the first run; `output` receives a `$ git ...` line
 * per step and git's stdout and stderr as produced; aborting `signal` kills the running git
 * process and the sync rejects with RunAbortedError; with `user`, git runs as that user, who
 * then owns the checkout (the daemon runs as root).
 */
export interface SyncOptions extends CheckoutGitOptions {
  /** 40 or 64 lowercase hex: the commit a push named. */
  sha: string;
  /**
   * The branch the push was for. When given, the checkout converges on the branch's tip
   * on the remote after fetching, which is `sha` or a newer commit: a stale or redelivered
   * push never rolls the branch back. Without it, exactly `sha` is checked out.
   */
  branch?: string;
  /** The tag a push was for: the checkout is the tag's commit (annotated tags peeled) after fetching. */
  tag?: string;
  submodules: boolean;
}

export interface SyncResult {
  /** The commit HEAD is at after the sync. */
  sha: string;
}

const FETCH_REFSPECS = ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*'];
/** The step that checks that the fetched branch or tag is there under its exact name. */
const FIND_REF = 'find ref';
/**
 * A fetch would end with `git maintenance run --auto` (a process of its own, 2–4 ms even
 * when there is nothing to do) before the deploy's command could start: it runs after the
 * command instead (`tidyCheckout`).
 */
const FETCH_OPTIONS = ['--no-tags', '--progress', '--no-auto-maintenance'];

/**
 * Brings `checkout` to exactly `sha`: cloned on the first run, fetched afterwards,
 * then a detached HEAD at the commit with every local change, untracked and ignored
 * file removed (and the same for submodules when asked).
 */
export async function syncCheckout(options: SyncOptions): Promise<SyncResult> {
  const { sha, remote, checkout } = options;
  if (!COMMIT_PATTERN.test(sha)) {
    throw new GitSyncError(`Expected the commit to be 40 or 64 lowercase hex characters, got ${JSON.stringify(sha)}`);
  }
  // Fetched, it would land on origin/HEAD, the link to the remote's default branch, and deploy that.
  if (options.branch === 'HEAD') throw new GitSyncError('Expected a branch, got "HEAD": a branch by that name is not deployed (git keeps origin/HEAD for the remote\'s default branch)');
  throwIfAborted(options.signal);
  // A warm checkout is told by its `.git` folder alone, whose entries also show stale locks.
  // Read synchronously, like the other small reads on the way to git and to the command: each
  // takes microseconds, where a trip through node's thread pool waited ~1 ms behind the
  // reply's durable writes.
  const gitEntries = gitFolderEntries(checkout);
  const state = gitEntries !== undefined ? 'git' : await checkoutState(checkout);
  if (state === 'foreign') {
    throw new GitSyncError(`Expected the checkout folder ${checkout} to be empty or a git checkout, but it holds other files. Move them away or choose another checkout folder.`);
  }
  if (state === 'missing') await makeCheckout(checkout, options.user);
  if (options.user) await ownCheckout(checkout, options.user);
  const git = checkoutGitRunner(options);

  // A branch or tag is checked out by name, as fetched: git resolves it in the same step.
  const ref = options.branch !== undefined ? `refs/remotes/origin/${options.branch}` : options.tag !== undefined ? `refs/tags/${options.tag}` : undefined;
  const fetch = { label: 'fetch', args: ['fetch', '--prune', ...FETCH_OPTIONS, '--', 'origin', ...FETCH_REFSPECS] };
  // git looks a name up by rules: a `refs/remotes/origin/<branch>` that is not there would be
  // found as the tag `refs/tags/refs/remotes/origin/<branch>`, which anyone who can push tags
  // can make. The ref must exist under exactly its own name; then the checkout finds it first.
  // A fetch that moved the ref has just written it as a file, which `sh` reads without starting
  // git (a millisecond on the way to the command); a ref found only packed is asked of git.
  const exactRef: GitStep[] = ref === undefined ? [] : [{ label: FIND_REF, args: ['show-ref', '--verify', '--quiet', '--', ref], unlessLooseRef: { ref, idLength: sha.length } }];
  // --force discards local changes to tracked files and the index; clean removes the rest.
  // Without submodules, clean runs only when the work tree, checked by the daemon after the
  // checkout, holds anything git's index does not name (see cleanUnlessIndexedOnly), or with
  // the checkout while a recent look called for it (see CLEAN_WITH_CHECKOUT_SYNCS).
  const clean: GitStep = { label: 'clean', args: ['clean', '-ffdx'] };
  const cleanWithCheckout = options.submodules || takeCleanWithCheckout(checkout);
  if (cleanWithCheckout && !options.submodules) options.output.write(`[deployhook] \`git clean\` runs with the checkout: the look after one of this checkout's last ${CLEAN_WITH_CHECKOUT_SYNCS} syncs called for it\n`);
  const checkoutSteps = [
    ...exactRef,
    { label: 'checkout', args: ['checkout', '--force', '--detach', ref === undefined ? sha : `${ref}^{commit}`, '--'] },
    ...(cleanWithCheckout ? [clean] : []),
  ];
  if (state === 'git') {
    // No entries when `.git` is a file, not a folder: lock files are looked for only in a `.git` folder.
    await removeStaleLocks(checkout, gitEntries ?? [], options.user, options.output);
    await pointOriginAt(git, checkout, remote);
  } else {
    await git.step('clone', ['clone', '--no-checkout', '--progress', '--', remote, checkout]);
    await rememberOrigin(checkout, remote);
  }
  const bringToCommit = async (): Promise<void> => {
    try {
      if (ref !== undefined) {
        // The usual push: every step in one process.
        await git.steps(state === 'git' ? [fetch, ...checkoutSteps] : checkoutSteps);
      } else {
        if (state === 'git') await git.step(fetch.label, fetch.args);
        await ensureCommit(git, sha, remote);
        await git.steps(checkoutSteps);
      }
      if (!cleanWithCheckout && (await cleanUnlessIndexedOnly(git, clean, options))) cleanWithCheckoutNext.set(checkout, CLEAN_WITH_CHECKOUT_SYNCS);
    } catch (error) {
      if (error instanceof GitSyncError && error.step === FIND_REF) throw missingRef(options, error);
      throw error;
    }
    if (options.submodules) {
      await git.step('submodule sync', ['submodule', 'sync', '--recursive']);
      await git.step('submodule update', ['submodule', 'update', '--init', '--recursive', '--force']);
      await git.step('submodule clean', ['submodule', 'foreach', '--recursive', 'git clean -ffdx']);
    }
  };
  // A git killed in a fetch or a submodule's update also leaves locks below `.git` (a ref's,
  // a submodule's index).
  await (state === 'git' ? onceMoreWithoutLocks(bringToCommit, options) : bringToCommit());
  const head = await headCommit(git, checkout);
  if (head === undefined || (ref === undefined && head !== sha)) {
    throw new GitSyncError(`Expected HEAD at ${ref === undefined ? sha : `the commit of ${ref}`} after the sync, found ${head ?? 'no commit'}`);
  }
  return { sha: head };
}

/**
 * `git clean -ffdx` after the checkout, unless the work tree holds exactly what git's index
 * names and nothing else (see holdsOnlyIndexed), when it would remove nothing: a git process
 * of its own less on the way to the command (5–7 ms on a host where a process start is dear).
 * The check is made after the checkout, so whatever is in the tree by then is seen, wherever it
 * came from (a command before, a hook of git's, a file `checkout` could not remove); the run
 * log says which way it went. Resolves true when `clean` ran.
 */
async function cleanUnlessIndexedOnly(git: GitRunner, clean: GitStep, options: Pick<SyncOptions, 'checkout' | 'output'>): Promise<boolean> {
  if (holdsOnlyIndexed(options.checkout)) {
    options.output.write("[deployhook] no `git clean`: the work tree holds exactly the files git's index names\n");
    return false;
  }
  await git.step(clean.label, clean.args);
  return true;
}

/**
 * After a look called for `git clean` (it found something to remove, or could not tell), this
 * many of the checkout's next syncs run it in the same `sh` as the checkout, without the look,
 * as every sync did before there was one: a command that leaves files behind each time (a
 * build's output, Python's `__pycache__`) costs no process start more than it did then. Then the
 * tree is looked at again, so a job that stopped leaving files goes back to no `clean`. Every
 * sync counts, one that fails too: the look only comes sooner.
 */
const CLEAN_WITH_CHECKOUT_SYNCS = 10;
/** Per checkout (one job's), how many more syncs run `clean` with the checkout. */
const cleanWithCheckoutNext = new Map<string, number>();

/** Whether this sync of `checkout` runs `clean` with the checkout, counting it down. */
function takeCleanWithCheckout(checkout: string): boolean {
  const left = cleanWithCheckoutNext.get(checkout) ?? 0;
  if (left <= 1) cleanWithCheckoutNext.delete(checkout);
  else cleanWithCheckoutNext.set(checkout, left - 1);
  return left > 0;
}

/**
 * git's own housekeeping, which the sync's fetch leaves out so that the command starts
 * sooner: `git maintenance run --auto` (by default `gc --auto`, which packs loose objects
 * once there are thousands). It runs in the foreground (git would otherwise go on in the
 * background), so that no git is still working in the checkout when the job's next run
 * starts and removes stale lock files. `GIT_DIR` names the checkout's own `.git`: if the
 * command broke it, git fails instead of looking for a repository in the folders above;
 * without a `.git` folder nothing is done. Rejects like a sync step (GitSyncError,
 * RunAbortedError); what git printed is in the error.
 */
export async function tidyCheckout(options: CheckoutGitOptions): Promise<void> {
  if (gitFolderEntries(options.checkout) === undefined) return;
  const foreground = ['-c', 'gc.autoDetach=false', '-c', 'maintenance.autoDetach=false'];
  const git = checkoutGitRunner({ ...options, env: { ...options.env, GIT_DIR: join(options.checkout, '.git') } });
  const housekeeping = () => git.steps([{ label: 'housekeeping', args: [...foreground, 'maintenance', 'run', '--auto', '--quiet'] }]);
  // A housekeeping stopped midway (a shutdown, its timeout) can leave the commit-graph's or
  // multi-pack-index's lock, and every later one would fail on it.
  await onceMoreWithoutLocks(housekeeping, options);
}

/** The error for a branch or tag that is no longer on the remote. */
function missingRef(options: SyncOptions, cause: unknown): GitSyncError {
  if (options.branch !== undefined) {
    return new GitSyncError(`Expected the branch ${JSON.stringify(options.branch)} on the remote ${withoutUrlPasswords(options.remote)}, but it is not there (deleted after the push?); the pushed commit ${options.sha} is only ever deployed through its branch`, { cause });
  }
  return new GitSyncError(`Expected the tag ${JSON.stringify(options.tag ?? '')} on the remote ${withoutUrlPasswords(options.remote)}, but it is not there (deleted after the push?)`, { cause });
}

/**
 * The commit HEAD is at. A detached HEAD is that commit's id alone in `.git/HEAD`; git is
 * asked only when the file says anything else (a `.git` file that points elsewhere, say).
 */
export async function headCommit(git: GitRunner, checkout: string): Promise<string | undefined> {
  const text = smallFile(join(checkout, '.git', 'HEAD'));
  // A FIFO or a link there would hold git up as well: no commit.
  if (text === undefined) return undefined;
  const id = text.slice(0, -1);
  if (text.endsWith('\n') && COMMIT_PATTERN.test(id)) return id;
  const head = await git.query(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']);
  return head !== undefined && COMMIT_PATTERN.test(head) ? head : undefined;
}

/**
 * The start of `.git/HEAD` or another small file in the checkout (see readPlainFileStart):
 * empty when there is no such file (`.git` is not a folder); undefined when something else is
 * there.
 */
function smallFile(path: string): string | undefined {
  const read = readPlainFileStart(path, 128);
  if (read === 'missing') return '';
  return read?.bytes.toString('utf8');
}

/**
 * Gives the checkout to the user git runs as, if another user owns it (run_as was added or
 * changed later): what that user owned, never a file of anyone else's a hard link there points
 * at, and only where no folder on the way to it is in the user's reach (see walkTo). Another
 * group alone (`run_as.group` changed, or the user changed it: they may, to any of their
 * groups) is set back by the user themselves, who can change only what they own, so the user
 * cannot make root change a file of root's at will.
 */
async function ownCheckout(checkout: string, user: ProcessUser): Promise<void> {
  const info = await stat(checkout);
  const run = promisify(execFile);
  if (info.uid !== user.uid) {
    // By its real path: `chown -R` changes a link given to it, not the folder it names.
    const { real, reachable } = await walkTo(resolve(checkout), user);
    if (reachable !== undefined) {
      const shown = await realpath(checkout).catch(() => checkout);
      throw new GitSyncError(
        `Expected every folder on the way to the checkout ${checkout} to be out of the job's user's reach (run_as, uid ${user.uid}), but they could change ${reachable}: there they could put a link to another folder in the checkout's place before root gives it to them (a \`chown -R\`), so deployhook gives them no checkout it finds owned by another user there. Give it to them yourself (chown -R ${user.uid}:${user.gid} ${shown}), or move it.`,
      );
    }
    await run('chown', ['-R', `--from=${info.uid}`, '--', `${user.uid}:${user.gid}`, real]);
  }
  // What the user may not change (a link to someone else's file) is left as it is.
  else if (info.gid !== user.gid) await runAsUser(user, 'chgrp', ['-R', '--', String(user.gid), await realpath(checkout)], { timeout: USER_STEP_TIMEOUT_MS }).catch(() => undefined);
}

/**
 * Makes a missing checkout folder: as the user where they may (their home, say), so that it is
 * theirs from the start; else as root, to be given to them (ownCheckout).
 */
async function makeCheckout(checkout: string, user: ProcessUser | undefined): Promise<void> {
  if (user !== undefined) {
    const made = await runAsUser(user, 'mkdir', ['-p', '--', checkout], { timeout: USER_STEP_TIMEOUT_MS }).then(
      () => true,
      () => false,
    );
    if (made) return;
    // Root follows the same path: not where a link of the user's could lead it.
    let existing = resolve(checkout);
    while (!(await lstat(existing).then(() => true, () => false))) existing = dirname(existing);
    // The folder root would make it in (a link's target, not the link, whose mode is always
    // 0777): the user must not be able to write there at all, sticky or not, or they could
    // put a link of theirs in the way before root's mkdir.
    const { reachable } = await walkTo(existing, user);
    const target = await stat(existing);
    if (reachable !== undefined || target.uid === user.uid || writableBy(target, user)) {
      throw new GitSyncError(`Expected to make the checkout ${checkout} as the job's user (run_as, uid ${user.uid}), but they may not, and the folders on the way are in their reach (${reachable ?? existing}), where root makes nothing for them: make the checkout yourself and give it to them, or move it.`);
    }
  }
  await mkdir(checkout, { recursive: true });
}

/** The longest the short steps run as the job's user (mkdir, chgrp, find) may take: a folder of theirs could hold them up (a FUSE mount). */
const USER_STEP_TIMEOUT_MS = 60_000;

/** Whether everyone, or a group of the user's, may write in the folder. */
function writableBy(folder: Stats, user: ProcessUser): boolean {
  return (folder.mode & 0o002) !== 0 || ((folder.mode & 0o020) !== 0 && (folder.gid === user.gid || (user.groups ?? []).includes(folder.gid)));
}

/** Whether the user may rename or replace the folder's entries: theirs, or writable by them and not sticky. */
function userCanChange(folder: Stats, user: ProcessUser): boolean {
  return folder.uid === user.uid || (writableBy(folder, user) && (folder.mode & 0o1000) === 0);
}

/**
 * Follows `path` (absolute) the way the kernel does, one entry at a time, links included: its
 * real path, or else the first folder on the way whose entries the user could rename or
 * replace (theirs, or writable by everyone or one of their groups and not sticky), or an entry
 * of theirs in a sticky folder others may write to. Where there is none, the user cannot make
 * the path lead anywhere else. Owner and mode bits are read, not ACLs.
 */
async function walkTo(path: string, user: ProcessUser): Promise<{ real: string; reachable?: never } | { real?: never; reachable: string }> {
  const pending = path.split('/').filter((part) => part !== '' && part !== '.');
  let current = '/';
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() ?? '';
    if (part === '..') {
      current = dirname(current);
      continue;
    }
    const folder = await lstat(current);
    if (userCanChange(folder, user)) return { reachable: current };
    const next = join(current, part);
    const entry = await lstat(next);
    // In a sticky folder others may write to, the user may still replace an entry of theirs.
    if (writableBy(folder, user) && entry.uid === user.uid) return { reachable: next };
    if (entry.isSymbolicLink()) {
      links += 1;
      if (links > 40) throw new GitSyncError(`Expected the checkout path ${path} to lead to a folder, but it goes through more than 40 links`);
      const target = await readlink(next);
      pending.unshift(...target.split('/').filter((item) => item !== '' && item !== '.'));
      if (target.startsWith('/')) current = '/';
      continue;
    }
    current = next;
  }
  return { real: current };
}

/** The lock files git leaves at the top of a git folder. */
const STALE_LOCK_NAMES = ['index.lock', 'HEAD.lock', 'config.lock', 'packed-refs.lock', 'shallow.lock'];

/**
 * One job never runs twice at once, so a git lock file found before a sync was left by a
 * git the daemon could not stop (it was killed mid-run): it is stale, and removed, by `find`
 * as the job's user (see removeLocks): `.git` was read a moment ago, and the user could have
 * put a link to another folder in its place since.
 */
async function removeStaleLocks(checkout: string, entries: readonly string[], user: SyncOptions['user'], output: SyncOptions['output']): Promise<void> {
  const names = STALE_LOCK_NAMES.filter((name) => entries.includes(name));
  if (names.length === 0) return;
  const named = names.flatMap((name, index) => [...(index > 0 ? ['-o'] : []), '-name', name]);
  await removeLocks(checkout, ['-maxdepth', '1', '(', ...named, ')'], user, output);
}

/** What git says when a lock file is in its way ("Unable to create '….lock': File exists", "cannot lock ref"). */
const LOCK_COMPLAINT = /\.lock'?: File exists|cannot lock ref/;

/**
 * Runs `attempt`; when git complains of a lock in its way, removes the stale locks in `.git`
 * (see removeNestedLocks) and, if there were any, runs it once more. Locks are looked for only
 * after a complaint: the walk goes through every file in `.git`.
 */
async function onceMoreWithoutLocks(attempt: () => Promise<void>, options: Pick<SyncOptions, 'checkout' | 'user' | 'output'>): Promise<void> {
  await attempt().catch(async (error: unknown) => {
    if (!(error instanceof GitSyncError && LOCK_COMPLAINT.test(error.message))) throw error;
    if ((await removeNestedLocks(options.checkout, options.user, options.output)) === 0) throw error;
    await attempt();
  });
}

/**
 * Stale locks anywhere in `.git` (see removeStaleLocks): a ref's under `refs/`, a submodule's
 * in its git folder under `modules/`, the commit-graph's or multi-pack-index's under
 * `objects/`. No ref may end in `.lock`, and no object file does, so every `*.lock` there is
 * git's. `find` does the walk, as the job's user where the job has one: the checkout is that
 * user's, and a process of theirs left running could swap a folder for a link while the walk
 * goes on; `find` follows no link, and whatever it removes the user could have removed.
 */
async function removeNestedLocks(checkout: string, user: SyncOptions['user'], output: SyncOptions['output']): Promise<number> {
  return removeLocks(checkout, ['-name', '*.lock'], user, output);
}

/**
 * Runs `find -P .git <tests> ! -type d -delete -print0` in the checkout, as the job's user when
 * it has one, with PATH alone of the daemon's environment, and says what it removed.
 */
async function removeLocks(checkout: string, tests: readonly string[], user: SyncOptions['user'], output: SyncOptions['output']): Promise<number> {
  // Listed once removed; NUL-separated, as a name may hold a newline.
  const args = ['-P', '.git', ...tests, '!', '-type', 'd', '-delete', '-print0'];
  const found = await runAsUser(user, 'find', args, { cwd: checkout, timeout: USER_STEP_TIMEOUT_MS }).then(
    (stdout) => stdout,
    // What it removed before it failed (a file it may not remove) is still listed.
    (error: { stdout?: string }) => error.stdout ?? '',
  );
  const removed = found.split('\0').filter((path) => path !== '');
  for (const path of removed) output.write(`[deployhook] removed the stale lock ${printable(path)} left by an interrupted run\n`);
  return removed.length;
}

/**
 * The entries of the checkout's `.git` folder, or undefined when it is not a folder there. A
 * `.git` that is a link is refused: the stale-lock clean-up, run by the daemon (as root with
 * `run_as`), would otherwise remove files wherever a command that changed the checkout points it.
 * Read through the folder once it is open (see folderEntries), so a link put in its place
 * meanwhile is not followed either.
 */
function gitFolderEntries(checkout: string): string[] | undefined {
  const entries = folderEntries(join(checkout, '.git'));
  if (entries === 'link') {
    throw new GitSyncError(`Expected .git in the checkout ${checkout} to be a folder, but it is a link. deployhook never makes one: move the checkout away, and the next run clones afresh.`);
  }
  return entries;
}

/** `missing`: nothing there or empty; `git`: has `.git`; `foreign`: other files. */
async function checkoutState(checkout: string): Promise<'missing' | 'git' | 'foreign'> {
  const entries = await readdir(checkout).catch((error: unknown) => {
    if (isErrnoException(error) && error.code === 'ENOENT') return [] as string[];
    throw new GitSyncError(`Could not read the checkout folder ${checkout}: ${String(error)}`, { cause: error });
  });
  if (entries.length === 0) return 'missing';
  return entries.includes('.git') ? 'git' : 'foreign';
}

/** Branch and tag fetches bring most commits; a server may also allow fetching one by id. */
async function ensureCommit(git: GitRunner, sha: string, remote: string): Promise<void> {
  const present = async (): Promise<boolean> => (await git.query(['cat-file', '-e', '--', `${sha}^{commit}`])) !== undefined;
  if (await present()) return;
  try {
    await git.step('fetch commit', ['fetch', ...FETCH_OPTIONS, '--', 'origin', sha]);
  } catch (error) {
    if (error instanceof GitSyncError) throw new CommitNotFoundError(sha, withoutUrlPasswords(remote), { cause: error });
    throw error;
  }
  if (!(await present())) throw new CommitNotFoundError(sha, withoutUrlPasswords(remote));
}

function isErrnoException(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && 'code' in error;
}
