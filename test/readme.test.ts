import { readFile, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, startServe } from './helpers/cli.js';
import { git } from './helpers/git-repo.js';
import { waitForRun } from './helpers/runs.js';
import { tempDir } from './helpers/tmp.js';

/**
 * The README's quick start, run as written: `npm start` (its prestart makes the demo secret,
 * then it serves config/deployhook.yml), then `send demo`, then the log. The only change is
 * the port: the test listens on a free one instead of 9000. It runs in a fresh clone of
 * this repository (sharing node_modules and dist), so it leaves nothing in the working tree.
 */
describe('the README quick start', () => {
  it('deploys the current HEAD of this repository with the shipped demo job and shows where the log is', async () => {
    const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
    const send = 'node dist/cli.js send demo --config config/deployhook.yml';
    const lines = readme.split('\n').map((line) => line.replace(/\s+#.*$/, ''));
    const walkthrough = ['jobs', 'runs', 'logs <run-id> -f', 'deploy demo --sha <older-commit>'].map((command) => `node dist/cli.js ${command} --config config/deployhook.yml`);
    for (const command of ['npm ci', 'npm start', send, 'cat var/log/demo/*.log', 'npm test', ...walkthrough]) expect(lines).toContain(command);

    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.prestart).toBe('node scripts/demo-secret.mjs');
    expect(pkg.scripts.start).toBe('node dist/cli.js serve --config config/deployhook.yml');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };
    const clone = await tempDir();
    await execa('git', ['clone', '--quiet', REPO_ROOT, clone]);
    await symlink(join(REPO_ROOT, 'node_modules'), join(clone, 'node_modules'));
    await symlink(join(REPO_ROOT, 'dist'), join(clone, 'dist'));
    await execa('node', ['scripts/demo-secret.mjs'], { cwd: clone, env, extendEnv: false });

    const head = await git(clone, 'rev-parse', 'HEAD');
    const branch = await git(clone, 'symbolic-ref', '--short', 'HEAD');
    const daemon = await startServe(['--config', 'config/deployhook.yml', '--listen', '127.0.0.1:0'], { cwd: clone, env });
    try {
      const sent = await runCli([...send.split(' ').slice(2), '--url', `http://127.0.0.1:${daemon.port}/hooks/github`], { cwd: clone, env });
      expect(sent.stderr).toBe('');
      expect(sent.stdout).toContain(`sent a signed push of refs/heads/${branch} at ${head}`);
      const match = /queued run ([0-9a-z]{26}) of job demo; log: (.*)$/m.exec(sent.stdout);
      expect(match?.[2]).toBe(join(clone, 'var', 'log', 'demo', `${match?.[1]}.log`));
      const record = await waitForRun(join(clone, 'var', 'state'), 'demo', match?.[1] ?? '');
      expect(record).toMatchObject({ status: 'succeeded', deployedSha: head });
      const log = await readFile(match?.[2] ?? '', 'utf8');
      expect(log).toContain(`deploying deployhook/demo refs/heads/${branch} at ${head}`);
      expect(log).toContain('done: nothing was changed, this is only a demo');

      // The walkthrough: jobs, runs, follow a log, roll back to an older commit.
      const url = ['--url', `http://127.0.0.1:${daemon.port}`];
      const run = async (command: string, values: Record<string, string>) => {
        const args = Object.entries(values).reduce((text, [name, value]) => text.replace(name, value), command).split(' ').slice(2);
        const result = await runCli([...args, ...url], { cwd: clone, env });
        expect(result.stderr).toBe('');
        expect(result.exitCode).toBe(0);
        return result.stdout;
      };
      expect(await run(walkthrough[0] ?? '', {})).toMatch(new RegExp(`^demo\\s+idle\\s+deployhook/demo\\s+succeeded .*${head.slice(0, 8)}`, 'm'));
      expect(await run(walkthrough[1] ?? '', {})).toContain(match?.[1]);
      expect(await run(walkthrough[2] ?? '', { '<run-id>': match?.[1] ?? '' })).toContain('[deployhook] finished: succeeded');
      const older = await git(clone, 'rev-parse', 'HEAD~1');
      const rolled = /queued run ([0-9a-z]{26}) of job demo: exactly/.exec(await run(walkthrough[3] ?? '', { '<older-commit>': older }));
      expect(await waitForRun(join(clone, 'var', 'state'), 'demo', rolled?.[1] ?? '')).toMatchObject({ status: 'succeeded', deployedSha: older });
      expect(await git(join(clone, 'var', 'state', 'checkouts', 'demo'), 'rev-parse', 'HEAD')).toBe(older);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
