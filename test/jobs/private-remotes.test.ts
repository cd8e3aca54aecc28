import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { startGitHttpServer } from '../helpers/git-http-server.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { SSHD, startSshd } from '../helpers/sshd.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'private-remote-secret-0123456789';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

async function deploy(daemon: TestDaemon, dir: string, job: string, repo: string, sha: string) {
  const body = JSON.stringify(githubPush({ repo, after: sha }));
  const reply = await daemon.post('github', body, await githubHeaders(body, SECRET));
  expect(reply.status).toBe(202);
  const [run] = reply.json.runs as Array<{ id: string }>;
  return waitForRun(join(dir, 'state'), job, run?.id ?? '');
}

// On CI a missing sshd fails the suite (startSshd says what to install); elsewhere it skips.
describe.skipIf(!existsSync(SSHD) && !process.env.CI)('a job with a private remote', () => {
  it('fetches over SSH with the configured deploy key and known_hosts', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'private over ssh\n' });
    const sshd = await startSshd();
    hook = await startDaemon(dir, {
      jobs: [{ name: 'ssh-app', provider: 'github', repo: 'acme/ssh-app', branches: ['main'], secret_env: 'SECRET', remote: sshd.url(remote.bare), ssh_key: sshd.deployKey, known_hosts: sshd.knownHosts, command: ['cat', 'app.txt'] }],
    }, { SECRET });
    const record = await deploy(hook, dir, 'ssh-app', 'acme/ssh-app', sha);
    expect(record).toMatchObject({ status: 'succeeded', deployedSha: sha });
    expect(await git(join(dir, 'state', 'checkouts', 'ssh-app'), 'rev-parse', 'HEAD')).toBe(sha);
    expect(await readFile(record.logPath, 'utf8')).toContain('private over ssh');

    // `deployhook send` reads the branch and commit from the same private remote, with the job's key.
    const next = await remote.commit({ 'app.txt': 'sent over ssh\n' });
    const sent = await runCli(['send', 'ssh-app', '--config', hook.config.file, '--url', `${hook.url}/hooks/github`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, SECRET } });
    expect(sent.stderr).toBe('');
    expect(sent.stdout).toContain(`sent a signed push of refs/heads/main at ${next}`);
  });
});

describe('a job with a private HTTPS remote', () => {
  it('fetches with the token from token_file, and the token appears in no log or record', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'private over http\n' });
    const token = 'glpat-Daemon-Token-0a1b2c3d4e';
    const server = await startGitHttpServer({ projectRoot: dir, username: 'deploy-bot', token });
    await writeFile(join(dir, 'token'), `${token}\n`);
    hook = await startDaemon(dir, {
      jobs: [{ name: 'http-app', provider: 'github', repo: 'acme/http-app', branches: ['main'], secret_env: 'SECRET', remote: server.url('remote.git'), token_file: 'token', token_user: 'deploy-bot', command: ['sh', '-c', 'cat app.txt; echo "token in env? ${DEPLOYHOOK_GIT_PASSWORD:-no}"'] }],
    }, { SECRET });
    const record = await deploy(hook, dir, 'http-app', 'acme/http-app', sha);
    expect(record).toMatchObject({ status: 'succeeded', deployedSha: sha });
    expect(server.authorizations).toContain(`Basic ${Buffer.from(`deploy-bot:${token}`).toString('base64')}`);
    const log = await readFile(record.logPath, 'utf8');
    expect(log).toContain('private over http');
    expect(log).toContain('token in env? no');
    for (const text of [log, JSON.stringify(record), hook.logLines.join('\n')]) expect(text).not.toContain(token);
  });
});
