import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startServe } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'inherited-fd-secret-0123456789abc';

describe('a descriptor the daemon was started with', () => {
  it('never reaches a command: a wrapper’s lock file stays the daemon’s', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const lock = join(dir, 'wrapper.lock');
    const config = join(dir, 'deployhook.yml');
    // The command names where each of its descriptors leads (ls's own listing of the folder among them).
    const command = ['ls', '-l', '/proc/self/fd/'];
    await writeConfigFile(config, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command }] });
    const daemon = await startServe(['--config', config], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET }, before: `exec 50>>'${lock}'` });
    try {
      // The daemon holds it, as the wrapper meant.
      expect(await readFile(`/proc/${daemon.process.pid}/fd/50`, 'utf8').then(() => true, () => false)).toBe(true);
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const response = await fetch(`http://127.0.0.1:${daemon.port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
      const [run] = ((await response.json()) as { runs: Array<{ id: string }> }).runs;
      const record = await waitForRun(join(dir, 'state'), 'app', run?.id ?? '');
      const log = await readFile(record.logPath, 'utf8');

      expect(record.status, log).toBe('succeeded');
      expect(log).toMatch(/ 1 -> /);
      expect(log).not.toContain(lock);
      expect(log).not.toMatch(/ 50 -> /);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
