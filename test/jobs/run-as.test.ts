import { chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { newSigningSecret, standardSignature } from '../helpers/standard-webhooks.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'run-as-secret-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

// Switching users needs root, as deployhook itself does; CI runs as root, so there it must not skip.
const notRoot = process.getuid?.() !== 0;

describe.skipIf(notRoot && !process.env.CI)('run_as', () => {
  it('runs git and the command as the configured user, who owns the checkout and can read the payload', async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'app\n' });
    await execa('chmod', ['-R', 'a+rX', remote.bare]);
    await execa('chown', ['-R', 'nobody', remote.bare]);
    const command = ['sh', '-c', 'echo "uid=$(id -u) gid=$(id -g) home=$HOME"; head -c 9 "$DEPLOYHOOK_EVENT_FILE"; echo; echo "event folder $(dirname "$DEPLOYHOOK_EVENT_FILE") $(stat -c "%a %u" "$(dirname "$DEPLOYHOOK_EVENT_FILE")")"; touch made-by-command'];
    hook = await startDaemon(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command, run_as: { user: 'nobody', group: 'nogroup' } }] }, { SECRET });
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
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

  it("asks the remote for a generic event's branch tip as the job's user, without the daemon's secrets in git's environment", async () => {
    expect(process.getuid?.(), 'these tests need root').toBe(0);
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const remote = await createRemote(dir);
    await remote.commit({ 'app.txt': 'app\n' });
    await execa('chmod', ['-R', 'a+rX', remote.bare]);
    await execa('chown', ['-R', 'nobody', remote.bare]);
    // A git first on PATH that notes who runs it, whether the daemon's secrets reach it, and for what.
    const bin = join(dir, 'bin');
    await mkdir(bin, { mode: 0o755 });
    const calls = join(dir, 'git-calls.txt');
    await writeFile(calls, '');
    await chmod(calls, 0o666);
    const realGit = (await execa('sh', ['-c', 'command -v git'])).stdout.trim();
    await writeFile(join(bin, 'git'), `#!/bin/sh\necho "$(id -u) \${SECRET:+secrets-visible} $1" >> ${calls}\nexec ${realGit} "$@"\n`, { mode: 0o755 });
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
});
