import { chmod, link, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { newSigningSecret, standardSignature } from '../helpers/standard-webhooks.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';
import type { RunRecord } from '../../src/jobs/run-record.js';

const SECRET = 'run-as-secret-0123456789abcdef';
const API_TOKEN = 'run-as-api-token-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

/** A bare remote with one commit, which the user nobody owns and may read (git refuses a repository another user owns). */
async function nobodysRemote(dir: string): Promise<{ bare: string; sha: string }> {
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'app.txt': 'app\n' });
  await execa('chmod', ['-R', 'a+rX', remote.bare]);
  await execa('chown', ['-R', 'nobody', remote.bare]);
  return { bare: remote.bare, sha };
}

/** A root-only test folder (others may pass through) with nobody's remote, and a folder of nobody's in it (their home, say). */
async function nobodysFolders(): Promise<{ dir: string; remote: { bare: string; sha: string }; theirs: string }> {
  expect(process.getuid?.(), 'these tests need root').toBe(0);
  const dir = await tempDir();
  await chmod(dir, 0o755);
  const remote = await nobodysRemote(dir);
  const theirs = join(dir, 'home-nobody');
  await mkdir(theirs);
  await execa('chown', ['nobody', theirs]);
  return { dir, remote, theirs };
}

/** Starts the daemon with one job that deploys `remote` into `checkout` as nobody, pushes its commit, and waits for the run. */
async function deployInto(dir: string, remote: { bare: string; sha: string }, checkout: string): Promise<RunRecord> {
  hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, checkout, command: ['true'], run_as: { user: 'nobody', group: 'nogroup' } }] }, { SECRET });
  const body = JSON.stringify(githubPush({ repo: 'acme/app', after: remote.sha }));
  const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
  return waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
}

/**
 * A `git` in `<dir>/bin`, to be put first on PATH, that appends `<what> <git's first argument>`
 * (`what` is shell text run in git's place: `$(id -u)`, say) to a file, then runs the real git.
 */
async function recordingGit(dir: string, what: string): Promise<{ bin: string; calls: string }> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { mode: 0o755 });
  const calls = join(dir, 'git-calls.txt');
  await writeFile(calls, '');
  await chmod(calls, 0o666);
  const realGit = (await execa('sh', ['-c', 'command -v git'])).stdout.trim();
  await writeFile(join(bin, 'git'), `#!/bin/sh\necho "${what} $1" >> ${calls}\nexec ${realGit} "$@"\n`, { mode: 0o755 });
  return { bin, calls };
}

// Switching users needs root, as deployhook itself does; CI runs as root, so there it must not skip.
const notRoot = process.getuid?.() !== 0;

describe.skipIf(notRoot && !process.env.CI)('run_as', () => {
  it('runs git and the command as the configured user, who owns the checkout and can read the payload', async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const remote = await nobodysRemote(dir);
    const command = ['sh', '-c', 'echo "uid=$(id -u) gid=$(id -g) home=$HOME"; head -c 9 "$DEPLOYHOOK_EVENT_FILE"; echo; echo "event folder $(dirname "$DEPLOYHOOK_EVENT_FILE") $(stat -c "%a %u" "$(dirname "$DEPLOYHOOK_EVENT_FILE")")"; touch made-by-command'];
    hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, run_as: { user: 'nobody', group: 'nogroup' } }] }, { SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: remote.sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    const record = await waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    const log = await readFile(record.logPath, 'utf8');
    expect(record.status, log).toBe('succeeded');
    expect(log).toContain('uid=65534 gid=65534 home=/nonexistent');
    expect(log).toContain('{"ref":"r');
    expect(log).toContain('(as nobody)');
    // The payload's copy is in a folder made for this run, which the user may pass through but
    // not change, and which is removed after the run.
    const [, folder, mode, owner] = /event folder (\S+) (\d+) (\d+)/.exec(log) ?? [];
    expect(folder).toMatch(new RegExp(`^${tmpdir()}/deployhook-event-\\w{6}$`));
    expect([mode, owner]).toEqual(['711', '0']);
    await expect(stat(folder ?? '')).rejects.toMatchObject({ code: 'ENOENT' });
    const checkout = join(dir, 'state', 'checkouts', 'app');
    expect((await stat(join(checkout, 'app.txt'))).uid).toBe(65534);
    expect((await stat(join(checkout, 'made-by-command'))).uid).toBe(65534);
  });

  it("never gives the user a file of root's that a hard link in the checkout points at, when the user changes the checkout's group", async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const remote = await nobodysRemote(dir);
    hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'], run_as: { user: 'nobody', group: 'nogroup' } }] }, { SECRET });
    const deploy = async () => {
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: remote.sha }));
      const reply = await hook?.post('github', body, await githubHeaders(body, SECRET));
      return waitForRun(join(dir, 'state'), 'app', (reply?.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    };
    expect(await deploy()).toMatchObject({ status: 'succeeded' });
    const checkout = join(dir, 'state', 'checkouts', 'app');
    // What a command could leave (where fs.protected_hardlinks is 0): a hard link to a file of
    // root's, and the checkout's group changed to another of the user's groups.
    const roots = join(dir, 'roots-file');
    await writeFile(roots, 'root only\n', { mode: 0o600 });
    await link(roots, join(checkout, 'linked'));
    await execa('chgrp', ['root', checkout]);
    expect(await deploy()).toMatchObject({ status: 'succeeded' });
    expect(await stat(roots)).toMatchObject({ uid: 0, gid: 0 });
    // The rest is set back to the job's group, by the user.
    expect(await stat(checkout)).toMatchObject({ uid: 65534, gid: 65534 });
    expect(await stat(join(checkout, 'app.txt'))).toMatchObject({ uid: 65534, gid: 65534 });
  });

  it('gives the user the folder a checkout that is a link names, and deploys there', async () => {
    const { dir, remote } = await nobodysFolders();
    const real = join(dir, 'releases', 'app');
    await mkdir(real, { recursive: true });
    const checkout = join(dir, 'app');
    await symlink(real, checkout);
    const record = await deployInto(dir, remote, checkout);

    expect(record.status, await readFile(record.logPath, 'utf8')).toBe('succeeded');
    expect(await stat(real)).toMatchObject({ uid: 65534, gid: 65534 });
    expect(await stat(join(real, 'app.txt'))).toMatchObject({ uid: 65534, gid: 65534 });
  });

  it("gives the user no checkout of another's in a folder they could change, and says what to do", async () => {
    const { dir, remote, theirs } = await nobodysFolders();
    // The user's own folder: there they could swap the checkout for another folder of root's
    // files between the check of its owner and the chown.
    const checkout = join(theirs, 'app');
    // A checkout root made (run_as added later).
    await git(theirs, 'init', '--quiet', 'app');
    const record = await deployInto(dir, remote, checkout);

    expect(record).toMatchObject({ status: 'failed' });
    expect(record.reason).toContain(`Expected every folder on the way to the checkout ${checkout} to be out of the job's user's reach (run_as, uid 65534), but they could change ${theirs}`);
    expect(record.reason).toContain(`chown -R 65534:65534 ${checkout}`);
    expect(await stat(join(checkout, '.git', 'HEAD'))).toMatchObject({ uid: 0 });
  });

  it("never gives the user root's folder that a link they put in the checkout's place leads to", async () => {
    const { dir, remote, theirs } = await nobodysFolders();
    // Root's repository somewhere (an etckeeper /etc, another job's checkout), with a secret in it.
    const victim = join(dir, 'roots-repository');
    await git(dir, 'init', '--quiet', victim);
    await writeFile(join(victim, 'shadow'), 'root only\n', { mode: 0o600 });
    const checkout = join(theirs, 'app');
    await symlink(victim, checkout);
    const record = await deployInto(dir, remote, checkout);

    expect(record).toMatchObject({ status: 'failed' });
    expect(record.reason).toContain(`but they could change ${theirs}`);
    expect(await stat(join(victim, 'shadow'))).toMatchObject({ uid: 0, gid: 0 });
    expect(await stat(victim)).toMatchObject({ uid: 0, gid: 0 });
  });

  it("makes a missing checkout in the user's own folder as the user, and deploys", async () => {
    const { dir, remote, theirs } = await nobodysFolders();
    const checkout = join(theirs, 'app');
    const record = await deployInto(dir, remote, checkout);

    expect(record.status, record.reason).toBe('succeeded');
    expect(await stat(checkout)).toMatchObject({ uid: 65534 });
    expect(await stat(join(checkout, 'app.txt'))).toMatchObject({ uid: 65534 });
  });

  it("makes nothing as root where a link in the user's own folder leads", async () => {
    const { dir, remote, theirs } = await nobodysFolders();
    const roots = join(dir, 'roots-only');
    await mkdir(roots, { mode: 0o755 });
    await symlink(roots, join(theirs, 'sites'));
    const record = await deployInto(dir, remote, join(theirs, 'sites', 'app'));

    expect(record).toMatchObject({ status: 'failed' });
    expect(record.reason).toContain(`but they may not, and the folders on the way are in their reach (${theirs})`);
    expect(await readdir(roots)).toEqual([]);
  });

  it('makes a missing checkout as the user in a folder they may write through another of their groups', async () => {
    const { dir, remote } = await nobodysFolders();
    const group = `dh-test-${randomBytes(4).toString('hex')}`;
    await execa('groupadd', ['--users', 'nobody', group]);
    try {
      // /var/www as root:www-data 2775, say.
      const shared = join(dir, 'www');
      await mkdir(shared);
      await execa('chown', [`root:${group}`, shared]);
      await chmod(shared, 0o2775);
      const record = await deployInto(dir, remote, join(shared, 'app'));

      expect(record.status, record.reason).toBe('succeeded');
      expect(await stat(join(shared, 'app'))).toMatchObject({ uid: 65534 });
    } finally {
      await execa('groupdel', [group]);
    }
  });

  it("makes a missing checkout as root, and gives it to the user, behind root's own link (/var/www -> /srv/www)", async () => {
    const { dir, remote } = await nobodysFolders();
    const real = join(dir, 'srv-www');
    await mkdir(real, { mode: 0o755 });
    await symlink(real, join(dir, 'www'));
    const record = await deployInto(dir, remote, join(dir, 'www', 'app'));

    expect(record.status, record.reason).toBe('succeeded');
    expect(await stat(join(real, 'app'))).toMatchObject({ uid: 65534 });
  });

  it("removes a stale lock in the user's checkout as the user, and deploys", async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const remote = await createRemote(dir);
    await remote.commit({ 'app.txt': 'one\n' });
    await execa('chmod', ['-R', 'a+rX', remote.bare]);
    await execa('chown', ['-R', 'nobody', remote.bare]);
    hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['cat', 'app.txt'], run_as: { user: 'nobody', group: 'nogroup' } }] }, { SECRET });
    const deploy = async (sha: string) => {
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const reply = await hook?.post('github', body, await githubHeaders(body, SECRET));
      return waitForRun(join(dir, 'state'), 'app', (reply?.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    };
    expect(await deploy(await git(remote.work, 'rev-parse', 'HEAD'))).toMatchObject({ status: 'succeeded' });
    // What a fetch killed mid-way leaves: a ref's lock, here the user's own file.
    const lock = join(dir, 'state', 'checkouts', 'app', '.git', 'refs', 'remotes', 'origin', 'main.lock');
    await writeFile(lock, '');
    await execa('chown', ['nobody:nogroup', lock]);
    // And one only root may remove (in a folder of root's): the clean-up, as the user, leaves it.
    const tags = join(dir, 'state', 'checkouts', 'app', '.git', 'refs', 'tags');
    await execa('chown', ['root:root', tags]);
    await writeFile(join(tags, 'roots.lock'), '');
    await execa('chown', ['-R', 'root', remote.bare]);
    const sha = await remote.commit({ 'app.txt': 'two\n' });
    await execa('chmod', ['-R', 'a+rX', remote.bare]);
    await execa('chown', ['-R', 'nobody', remote.bare]);
    const record = await deploy(sha);
    const log = await readFile(record.logPath, 'utf8');
    expect(record, log).toMatchObject({ status: 'succeeded', deployedSha: sha });
    expect(log).toContain('[deployhook] removed the stale lock .git/refs/remotes/origin/main.lock left by an interrupted run\n');
    expect(log).toContain('two\n');
    expect(log).not.toContain('roots.lock');
    expect(existsSync(join(tags, 'roots.lock'))).toBe(true);
  });

  it("asks the remote for a generic event's branch tip as the job's user, without the daemon's secrets in git's environment", async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const remote = await nobodysRemote(dir);
    // A git first on PATH that notes who runs it, whether the daemon's secrets reach it, and for what.
    const { bin, calls } = await recordingGit(dir, '$(id -u) ${SECRET:+secrets-visible}');
    const secret = newSigningSecret();
    const job = { name: 'ops', provider: 'generic', source: 'ops', secret_env: 'SECRET', remote: remote.bare, branches: ['main'], command: ['true'], run_as: { user: 'nobody', group: 'nogroup' } };
    hook = await startDaemon(dir, { jobs: [job] }, { SECRET: secret, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
    const body = '{"status":"firing"}';
    const reply = await hook.post('generic/ops', body, { 'content-type': 'application/json', ...standardSignature(secret, body) });
    expect(reply.status, JSON.stringify(reply.json)).toBe(202);
    const lsRemote = (await readFile(calls, 'utf8')).split('\n').filter((line) => line.endsWith(' ls-remote'));
    expect(lsRemote.length).toBeGreaterThan(0);
    for (const line of lsRemote) expect(line).toBe('65534  ls-remote');
  });

  it("gives git and the command every group /etc/group gives the user, as systemd's User= would (a docker group, say)", async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const group = `dh-test-${randomBytes(4).toString('hex')}`;
    await execa('groupadd', ['--users', 'nobody', group]);
    try {
      const gid = (await execa('getent', ['group', group])).stdout.split(':')[2] ?? '';
      expect(gid).toMatch(/^\d+$/);
      // A file only the group may read, as docker's socket is.
      const shared = join(dir, 'shared.txt');
      await writeFile(shared, 'read through the group\n', { mode: 0o640 });
      await execa('chown', [`root:${group}`, shared]);
      const remote = await nobodysRemote(dir);
      const { bin, calls } = await recordingGit(dir, '$(id -G)');
      const command = ['sh', '-c', `echo "groups $(id -G)"; cat ${shared}`];
      hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, run_as: { user: 'nobody' } }], api: { token_env: 'API_TOKEN' } }, { SECRET, API_TOKEN, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: remote.sha }));
      const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
      const record = await waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
      const log = await readFile(record.logPath, 'utf8');
      expect(record.status, log).toBe('succeeded');
      expect(log).toContain(`groups 65534 ${gid}\n`);
      expect(log).toContain('read through the group');
      // An operator's deploy by branch: the daemon asks the remote for its tip as the job's git would.
      const deploy = await fetch(`${hook.url}/api/jobs/app/deploy`, { method: 'POST', headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' }, body: JSON.stringify({ ref: 'main' }) });
      expect(deploy.status).toBe(202);
      const again = await waitForRun(join(dir, 'state'), 'app', ((await deploy.json()) as { run: { id: string } }).run.id);
      expect(again.status).toBe('succeeded');
      // Every git the daemon started, the first clone and the question to the remote among them.
      // (git's questions about the checkout, which have the one group, are not asked here: the
      // job has no `paths`, and HEAD and origin are read without git; nor is `clean`, as the
      // command leaves nothing in the checkout.)
      const gits = (await readFile(calls, 'utf8')).trim().split('\n');
      expect(gits.map((line) => line.split(' ').pop())).toEqual(expect.arrayContaining(['clone', 'checkout', 'ls-remote', 'fetch']));
      for (const line of gits) expect(line).toMatch(new RegExp(`^65534 ${gid} \\S+$`));
    } finally {
      await execa('groupdel', [group]);
    }
  });
});
