import { createServer } from 'node:net';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli, startServe } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'cli-test-secret-0123456789abcdef';
const PATH_ONLY = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

async function writeConfig(dir: string, settings: Record<string, unknown>): Promise<string> {
  const file = join(dir, 'deployhook.yml');
  await writeConfigFile(file, settings);
  return file;
}

describe('deployhook check', () => {
  it("prints the package's version", async () => {
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect(await runCli(['--version'])).toMatchObject({ exitCode: 0, stdout: version });
  });

  it('exits 0 and says so for a valid config', async () => {
    const dir = await tempDir();
    const file = await writeConfig(dir, { jobs: [{ name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'S', remote: '/srv/git/web.git', command: ['true'] }] });
    const result = await runCli(['check', '--config', file], { env: { ...PATH_ONLY, S: SECRET } });
    expect(result).toMatchObject({ exitCode: 0, stdout: `${file}: valid, 1 job` });
  });

  it('exits 1 and prints every problem with its path and what was expected', async () => {
    const dir = await tempDir();
    const file = await writeConfig(dir, {
      jobs: [
        { name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'S', remote: '/srv/git/web.git', command: ['true'] },
        { name: 'api', provider: 'github', repo: 'acme/api', branches: [''], secret_env: 'S', remote: '/srv/git/api.git', command: ['true'], colour: 'blue' },
      ],
    });
    const result = await runCli(['check', '--config', file], { env: { ...PATH_ONLY, S: SECRET } });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain(`deployhook: invalid config ${file}`);
    expect(result.stderr).toContain('jobs[1].branches[0]: expected a non-empty glob');
    expect(result.stderr).toMatch(/jobs\[1\]\.colour: unknown key/);
  });

  it('refuses an install folder without the files beside the bundle that the config needs, naming the layout', async () => {
    const dir = await tempDir();
    const tokened = { name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'S', remote: 'https://git.example.com/acme/web.git', token_env: 'T', command: ['true'] };
    const file = await writeConfig(dir, { jobs: [tokened] });
    const env = { ...PATH_ONLY, S: SECRET, T: 'https-token' };
    const check = (install: string, bundle = 'dist') => execa('node', [join(install, bundle, 'cli.js'), 'check', '--config', file], { env, extendEnv: false, reject: false });
    const layout = (install: string) => `deployhook runs from an install folder (here ${install}) that holds dist/ (by that name) and libexec/ beside it`;

    const bundleOnly = join(dir, 'bundle-only');
    await cp(join(REPO_ROOT, 'dist'), join(bundleOnly, 'dist'), { recursive: true });
    const noAskpass = await check(bundleOnly);
    expect(noAskpass.exitCode).toBe(1);
    expect(noAskpass.stderr).toBe(`deployhook: Expected git's askpass helper, which hands the HTTPS token of job web to git at ${join(bundleOnly, 'libexec', 'git-askpass.sh')} (ENOENT): ${layout(bundleOnly)}: copy or install the whole folder, or run \`npm ci\` in it, which builds dist/ (then \`npm prune --omit=dev\` where the development dependencies are not kept)`);
    await cp(join(REPO_ROOT, 'libexec'), join(bundleOnly, 'libexec'), { recursive: true });
    expect(await check(bundleOnly)).toMatchObject({ exitCode: 0, stdout: `${file}: valid, 1 job` });

    // The bundle's folder renamed: the files are looked for where dist/ would be.
    const renamed = join(dir, 'renamed');
    await cp(join(REPO_ROOT, 'dist'), join(renamed, 'deployhook-bin'), { recursive: true });
    const lost = await check(renamed, 'deployhook-bin');
    expect(lost.exitCode).toBe(1);
    expect(lost.stderr).toContain(layout(renamed));
  });

  it('warns about a short secret but still passes', async () => {
    const dir = await tempDir();
    const file = await writeConfig(dir, { jobs: [{ name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'S', remote: '/srv/git/web.git', command: ['true'] }] });
    const result = await runCli(['check', '--config', file], { env: { ...PATH_ONLY, S: 'short' } });
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('warning: jobs[0].secret_env: the webhook secret is shorter than 16 bytes');
    expect(result.stdout).not.toContain('short\n');
  });

  it('accepts the shipped production example with its jobs.d', async () => {
    const dir = await tempDir();
    const etc = join(dir, 'etc');
    await mkdir(join(etc, 'tokens'), { recursive: true });
    await mkdir(join(etc, 'secrets'), { recursive: true });
    await cp(join(REPO_ROOT, 'config', 'jobs.d.example'), join(etc, 'jobs.d'), { recursive: true });
    for (const name of ['infra.yml', 'k8s.yml']) {
      const text = await readFile(join(etc, 'jobs.d', name), 'utf8');
      await writeFile(join(etc, 'jobs.d', name), text.replaceAll('/etc/deployhook/', `${etc}/`));
    }
    const main = (await readFile(join(REPO_ROOT, 'config', 'production.example.yml'), 'utf8')).replaceAll('/var/lib/deployhook', join(dir, 'state')).replaceAll('/var/log/deployhook', join(dir, 'log'));
    await writeFile(join(etc, 'deployhook.yml'), main);
    await writeFile(join(etc, 'tokens', 'infra'), 'github_pat_example\n');
    await writeFile(join(etc, 'api-token'), `${SECRET}\n`);
    await writeFile(join(etc, 'secrets', 'k8s-apps'), `${SECRET}\n`);
    await mkdir(join(etc, 'keys'));
    for (const file of ['keys/infra', 'keys/k8s-apps', 'known_hosts']) await writeFile(join(etc, file), 'placeholder\n');
    const result = await runCli(['check', '--config', join(etc, 'deployhook.yml')], { env: { ...PATH_ONLY, INFRA_WEBHOOK_SECRET: SECRET } });
    expect(result.stderr).toBe('');
    expect(result).toMatchObject({ exitCode: 0, stdout: `${join(etc, 'deployhook.yml')}: valid, 3 jobs` });
  });
});

describe('deployhook serve', () => {
  it('refuses to start with an invalid config and says why', async () => {
    const dir = await tempDir();
    const file = await writeConfig(dir, { jobs: [{ name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'UNSET_SECRET', remote: '/srv/git/web.git', command: ['true'] }] });
    const result = await runCli(['serve', '--config', file], { env: PATH_ONLY });
    expect(result.exitCode).toBe(1);
    expect(result.stderr).toContain('jobs[0].secret_env: expected the environment variable UNSET_SECRET to be set, but it is not');
  });

  it('says what to do when the port is taken', async () => {
    const dir = await tempDir();
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const file = await writeConfig(dir, { listen: `127.0.0.1:${port}` });
      const result = await runCli(['serve', '--config', file], { env: PATH_ONLY });
      expect(result.exitCode).toBe(1);
      expect(result.stderr).toContain(`127.0.0.1:${port} is already in use`);
    } finally {
      blocker.close();
    }
  });

  it('deploys a push sent by `deployhook send`, then stops cleanly on SIGTERM', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'app.txt': 'one\n' });
    const sha = await remote.commit({ 'app.txt': 'two\n' });
    const file = await writeConfig(dir, { jobs: [{ name: 'app', provider: 'gitlab', repo: 'acme/apps/app', branches: ['main'], secret_env: 'S', remote: remote.bare, command: ['cat', 'app.txt'] }] });
    const env = { ...PATH_ONLY, S: SECRET };
    const daemon = await startServe(['--config', file], { env });
    try {
      const sent = await runCli(['send', 'app', '--config', file, '--url', `http://127.0.0.1:${daemon.port}/hooks/gitlab`], { env });
      expect(sent.stderr).toBe('');
      expect(sent.exitCode).toBe(0);
      expect(sent.stdout).toContain(`sent a signed push of refs/heads/main at ${sha}`);
      const id = /queued run ([0-9a-z]{26}) of job app; log: (.*)$/m.exec(sent.stdout);
      expect(id?.[2]).toBe(join(dir, 'logs', 'app', `${id?.[1]}.log`));
      const record = await waitForRun(join(dir, 'state'), 'app', id?.[1] ?? '');
      expect(record).toMatchObject({ status: 'succeeded', deployedSha: sha });
      expect(await readFile(id?.[2] ?? '', 'utf8')).toContain('two\n');
      expect(await git(join(dir, 'state', 'checkouts', 'app'), 'rev-parse', 'HEAD')).toBe(sha);
      expect(daemon.lines).toContainEqual(expect.objectContaining({ msg: 'delivery', provider: 'gitlab', repo: 'acme/apps/app', decision: 'queued' }));
      expect(JSON.stringify(daemon.lines)).not.toContain(SECRET);
    } finally {
      expect(await daemon.stop('SIGTERM')).toBe(0);
    }
  });

  it('`deployhook send` fails with one clear line when the daemon is not running or the job is unknown', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const file = await writeConfig(dir, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'S', remote: remote.bare, command: ['true'] }] });
    const env = { ...PATH_ONLY, S: SECRET };
    const down = await runCli(['send', 'app', '--config', file, '--sha', sha, '--url', 'http://127.0.0.1:9/hooks/github'], { env });
    expect(down.exitCode).toBe(1);
    expect(down.stderr).toMatch(/^deployhook: Could not reach deployhook at http:\/\/127\.0\.0\.1:9\/hooks\/github: is the daemon running\?/);
    const unknown = await runCli(['send', 'nope', '--config', file], { env });
    expect(unknown.exitCode).toBe(1);
    expect(unknown.stderr.trim()).toBe(`deployhook: No job named "nope" in ${file}; its jobs: app`);
  });
});
