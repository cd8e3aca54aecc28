import { chmod, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
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
});
