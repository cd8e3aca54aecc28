import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'a-long-enough-test-secret-0123456789';

const goodJob = {
  name: 'web',
  provider: 'github',
  repo: 'Acme/Web',
  branches: ['main'],
  secret_env: 'WEB_SECRET',
  remote: 'git@github.com:acme/web.git',
  command: ['ansible-playbook', 'site.yml'],
};

async function writeConfig(dir: string, document: unknown, name = 'deployhook.yml'): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, typeof document === 'string' ? document : JSON.stringify(document));
  return file;
}

async function issuesOf(document: unknown, env: Record<string, string> = { WEB_SECRET: SECRET }): Promise<string[]> {
  const dir = await tempDir();
  try {
    await loadConfig(await writeConfig(dir, document), env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((issue) => `${issue.path}: ${issue.message}`);
    throw error;
  }
  return [];
}

describe('loading a config', () => {
  it('resolves relative paths against the config folder and applies defaults', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'web.secret'), `${SECRET}\n`);
    const file = await writeConfig(dir, {
      state_dir: 'state',
      log_dir: '/var/log/deployhook',
      jobs: [{ ...goodJob, secret_env: undefined, secret_file: 'web.secret', remote: '../repos/web.git', workdir: 'deploy/prod' }],
    });
    const config = await loadConfig(file, {});
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(config.stateDir).toBe(join(dir, 'state'));
    expect(config.logDir).toBe('/var/log/deployhook');
    expect(config.maxParallel).toBe(4);
    expect(config.maxBodyBytes).toBe(25 * 1024 * 1024);
    const [job] = config.jobs;
    expect(job).toMatchObject({
      name: 'web',
      repoKey: 'acme/web',
      secrets: [SECRET],
      remote: join(dir, '..', 'repos', 'web.git'),
      checkout: join(dir, 'state', 'checkouts', 'web'),
      workdir: join('deploy', 'prod'),
      timeoutMs: 30 * 60_000,
      killGraceMs: 10_000,
      submodules: false,
    });
  });

  it('keeps URL and scp-style remotes as written', async () => {
    const dir = await tempDir();
    const remotes = ['git@github.com:acme/web.git', 'ssh://git@example.com:2222/acme/web.git', 'https://gitlab.example.com/acme/web.git'];
    const file = await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs: remotes.map((remote, index) => ({ ...goodJob, name: `web${index}`, remote })) });
    const config = await loadConfig(file, { WEB_SECRET: SECRET });
    expect(config.jobs.map((job) => job.remote)).toEqual(remotes);
  });

  it('refuses an HTTP(S) remote with a password in it, or a user name without a token beside it, and shows neither', async () => {
    // An @ in the user name (an e-mail address) does not hide the password after it.
    const withPassword = ['http://deploy:PASSWORD-1234@git.example.com/web.git', 'HTTPS://x-access-token:TOKEN-5678@github.com/acme/web.git', 'https://me@corp.example:Secr3t-9@bitbucket.org/a/b.git'];
    const userAlone = 'https://ghp_TOKENtoken1234567890@github.com/acme/web.git';
    const issues = await issuesOf({ state_dir: 's', log_dir: 'l', jobs: [...withPassword, userAlone].map((remote, index) => ({ ...goodJob, name: `web${index}`, remote, ...(index === 2 ? { token_env: 'WEB_SECRET' } : {}) })) });

    expect(issues).toEqual([
      ...withPassword.map((_remote, index) => `jobs[${index}].remote: expected an HTTP(S) remote without a password in it (not shown): give it with token_file or token_env, and the user name as token_user or in the URL. In the URL it would show in \`ps\`, in the checkout's .git/config and in the run log`),
      "jobs[3].remote: expected token_file or token_env beside an HTTP(S) remote with a user name in it (not shown): a user name alone there is often the token itself (https://<token>@github.com), which would show in `ps`, in the checkout's .git/config and in the run log. Give the token with token_file or token_env",
    ]);
    for (const secret of ['TOKENtoken', 'PASSWORD', 'TOKEN-5678', 'Secr3t']) expect(issues.join('\n')).not.toContain(secret);
    // A user name with a token beside it, as Azure DevOps' and Bitbucket's clone URLs have it; an @ in the path.
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'a-token-0123456789\n');
    const named = ['https://myorg@dev.azure.com/myorg/proj/_git/repo', 'https://jdoe@bitbucket.org/acme/app.git'];
    const config = await loadConfig(await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs: [...named.map((remote, index) => ({ ...goodJob, name: `named${index}`, remote, token_file: 'token' })), { ...goodJob, name: 'at', remote: 'https://git.example.com/@team/web.git' }] }), { WEB_SECRET: SECRET });
    expect(config.jobs.map((job) => job.remote)).toEqual([...named, 'https://git.example.com/@team/web.git']);
  });

  it('adds every job of every YAML file in jobs_dir, with paths relative to that file', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'jobs.d'));
    await writeFile(join(dir, 'jobs.d', 'api.yml'), JSON.stringify({ ...goodJob, name: 'api', repo: 'acme/api', checkout: 'checkouts/api' }));
    await writeFile(join(dir, 'jobs.d', 'infra.yaml'), JSON.stringify({ jobs: [{ ...goodJob, name: 'infra-staging', repo: 'acme/infra' }, { ...goodJob, name: 'infra-prod', repo: 'acme/infra' }] }));
    await writeFile(join(dir, 'jobs.d', 'README.txt'), 'not a job');
    // A repository turned off by commenting its file out whole.
    await writeFile(join(dir, 'jobs.d', 'old.yml'), '# name: old\n# provider: github\n');
    const file = await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs_dir: 'jobs.d', jobs: [goodJob] });
    const config = await loadConfig(file, { WEB_SECRET: SECRET });
    expect(config.jobs.map((job) => job.name)).toEqual(['web', 'api', 'infra-staging', 'infra-prod']);
    expect(config.warnings).toEqual(['old.yml: no job in this file (it is empty, or only comments); skipped']);
    expect(config.jobs[1]?.checkout).toBe(join(dir, 'jobs.d', 'checkouts', 'api'));
  });

  it('accepts several secrets during a rotation', async () => {
    const dir = await tempDir();
    const config = await loadConfig(await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, secret_env: ['WEB_SECRET', 'NEW_SECRET'] }] }), { WEB_SECRET: SECRET, NEW_SECRET: `${SECRET}-new` });
    expect(config.jobs[0]?.secrets).toEqual([SECRET, `${SECRET}-new`]);
  });

  it('warns about a webhook secret shorter than 16 bytes', async () => {
    const dir = await tempDir();
    const config = await loadConfig(await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs: [goodJob] }), { WEB_SECRET: 'short' });
    expect(config.warnings).toEqual([expect.stringContaining('jobs[0].secret_env: the webhook secret is shorter than 16 bytes')]);
  });

  const invalid: Array<{ name: string; document: unknown; env?: Record<string, string>; expected: string[] }> = [
    {
      name: 'a dedup window of zero (nothing would be remembered)',
      document: { state_dir: 's', log_dir: 'l', dedup_window: '0s', jobs: [goodJob] },
      expected: ['dedup_window: expected a window longer than zero'],
    },
    {
      name: 'a dedup window shorter than twice the timestamp tolerance (a replay within it would run again)',
      document: { state_dir: 's', log_dir: 'l', dedup_window: '9m', timestamp_tolerance: '5m', jobs: [goodJob] },
      expected: ['dedup_window: expected at least twice timestamp_tolerance (5m), got 9m'],
    },
    {
      name: 'a headers timeout longer than the request timeout (node would refuse the listener)',
      document: { state_dir: 's', log_dir: 'l', headers_timeout: '60s', jobs: [goodJob] },
      expected: ['headers_timeout: expected at most request_timeout (30s), got 60s'],
    },
    {
      name: 'an empty branch glob',
      document: { state_dir: 's', log_dir: 'l', jobs: [goodJob, { ...goodJob, name: 'api', branches: [''] }] },
      expected: ['jobs[1].branches[0]: expected a non-empty glob'],
    },
    {
      name: 'unknown keys at the top and in a job',
      document: { state_dir: 's', log_dir: 'l', listen_on: 'x', jobs: [{ ...goodJob, brnaches: ['main'] }] },
      expected: [expect.stringMatching(/^listen_on: unknown key \(expected one of: listen, state_dir/)],
    },
    {
      name: 'an unknown key in a job',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, brnaches: ['main'] }] },
      expected: [expect.stringMatching(/^jobs\[0\]\.brnaches: unknown key \(expected one of: name, provider, repo, branches/)],
    },
    {
      name: 'missing state_dir and a bad listen address',
      document: { log_dir: 'l', listen: 'localhost' },
      expected: ['listen: expected "host:port" such as "127.0.0.1:9000", got "localhost"', 'state_dir: expected a path, but it is missing'],
    },
    {
      name: 'neither secret_env nor secret_file',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, secret_env: undefined }] },
      expected: ['jobs[0].secret_env: expected exactly one of secret_env or secret_file, got neither'],
    },
    {
      name: 'both secret_env and secret_file',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, secret_file: 'x' }] },
      expected: ['jobs[0].secret_env: expected exactly one of secret_env or secret_file, got both'],
    },
    {
      name: 'a secret variable that is not set',
      document: { state_dir: 's', log_dir: 'l', jobs: [goodJob] },
      env: {},
      expected: ['jobs[0].secret_env: expected the environment variable WEB_SECRET to be set, but it is not'],
    },
    {
      name: 'a secret variable that is empty',
      document: { state_dir: 's', log_dir: 'l', jobs: [goodJob] },
      env: { WEB_SECRET: '' },
      expected: ['jobs[0].secret_env: expected the environment variable WEB_SECRET to hold a secret, but it is empty'],
    },
    {
      name: 'a bad job name, provider, repo and timeout',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, name: 'Web App', provider: 'svn', timeout: '10 minutes' }] },
      expected: [
        'jobs[0].name: expected lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, got "Web App"',
        'jobs[0].provider: expected one of "github", "gitlab", "gitea", "forgejo", "bitbucket", "bitbucket-server", "generic", got "svn"',
        'jobs[0].timeout: expected a duration such as `90s` or `15m`, got "10 minutes"',
      ],
    },
    {
      name: 'a GitHub repo with a subgroup',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, repo: 'acme/sub/web' }] },
      expected: ['jobs[0].repo: expected a github repository such as `owner/name`, got "acme/sub/web"'],
    },
    {
      name: 'Gitea and Forgejo repos that are not owner/name',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, provider: 'gitea', repo: 'acme/sub/web' }, { ...goodJob, name: 'fj', provider: 'forgejo', repo: 'acme' }] },
      expected: ['jobs[0].repo: expected a gitea repository such as `owner/name`, got "acme/sub/web"', 'jobs[1].repo: expected a forgejo repository such as `owner/name`, got "acme"'],
    },
    {
      name: 'Bitbucket repos that are not workspace/slug or PROJECT/slug',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, provider: 'bitbucket', repo: 'acme' }, { ...goodJob, name: 'dc', provider: 'bitbucket-server', repo: 'PROJ/sub/web' }] },
      expected: [
        'jobs[0].repo: expected a bitbucket repository such as `workspace/repo-slug` (the workspace ID, then the repository slug), got "acme"',
        'jobs[1].repo: expected a bitbucket-server repository such as `PROJECT/repo-slug` (the project key, then the repository slug; `~user/repo-slug` for a personal repository), got "PROJ/sub/web"',
      ],
    },
    {
      name: 'an empty command and a command that is a string',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, command: [] }, { ...goodJob, name: 'b', command: 'make deploy' }] },
      expected: ['jobs[0].command: expected an argv list with at least the program', 'jobs[1].command: expected an argv list such as ["ansible-playbook", "site.yml"], got a string'],
    },
    {
      name: 'a workdir that leaves the checkout',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, workdir: '../../etc' }] },
      expected: ['jobs[0].workdir: expected a relative folder inside the checkout, got "../../etc"'],
    },
    {
      name: 'a remote that looks like an option',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, remote: '--upload-pack=touch /tmp/x' }] },
      expected: ['jobs[0].remote: expected a git URL or path, got a value starting with "-"'],
    },
    {
      name: 'an env name deployhook reserves',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, env: { DEPLOYHOOK_SHA: 'x' } }] },
      expected: ['jobs[0].env.DEPLOYHOOK_SHA: expected a name outside DEPLOYHOOK_*, which deployhook sets itself'],
    },
    {
      name: 'two jobs with one name',
      document: { state_dir: 's', log_dir: 'l', jobs: [goodJob, { ...goodJob, repo: 'acme/other' }] },
      expected: [expect.stringMatching(/^job "web": expected unique job names, but "web" is defined in .*deployhook.yml and .*deployhook.yml$/)],
    },
    {
      name: 'two jobs sharing a checkout',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, checkout: 'co' }, { ...goodJob, name: 'api', checkout: 'co' }] },
      expected: [expect.stringMatching(/^job "api".checkout: expected a checkout of its own, but .* is also the checkout of job "web"$/)],
    },
    {
      name: 'a job with neither branches nor tags',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, branches: undefined }] },
      expected: ['jobs[0].branches: expected branch globs, tag globs (`tags`), or both'],
    },
    {
      name: 'a zero timeout',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, timeout: '0s' }] },
      expected: ['jobs[0].timeout: expected a timeout longer than zero'],
    },
    {
      name: 'a deploy key and known_hosts that do not exist',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, ssh_key: 'keys/missing', known_hosts: '/nonexistent/known_hosts' }] },
      expected: [expect.stringMatching(/^jobs\[0\]\.ssh_key: expected a readable file at .*keys\/missing, got ENOENT$/), 'jobs[0].known_hosts: expected a readable file at /nonexistent/known_hosts, got ENOENT'],
    },
    {
      name: 'branch globs that only exclude',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, branches: ['!wip/*'] }] },
      expected: ['jobs[0].branches: expected at least one glob that is not an exclusion ("!...")'],
    },
    {
      name: 'a checkout nested in another job\'s',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, checkout: 'co' }, { ...goodJob, name: 'api', checkout: 'co/api' }] },
      expected: [expect.stringMatching(/^job "api".checkout: expected a checkout of its own, but .*co\/api and the checkout of job "web" \(.*co\) are nested$/)],
    },
    {
      name: 'a checkout that holds the state folder',
      document: { state_dir: 'deploy/state', log_dir: 'l', jobs: [{ ...goodJob, checkout: 'deploy' }] },
      expected: [expect.stringMatching(/^job "web".checkout: expected a checkout that does not hold deployhook's own folder .*deploy\/state$/)],
    },
    {
      name: 'run_as with a user that does not exist',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, run_as: { user: 'no-such-user-xyz' } }] },
      expected: ['jobs[0].run_as: expected a user that exists on this machine, got "no-such-user-xyz"'],
    },
    {
      name: 'allow_from with a bad network and an unknown provider',
      document: { state_dir: 's', log_dir: 'l', allow_from: { github: ['140.82.112.0/20', '10.0.0.0/33'], svn: ['10.0.0.0/8'] } },
      expected: ['allow_from.github[1]: expected a network such as "192.0.2.0/24" or "2001:db8::/32", got "10.0.0.0/33"', expect.stringMatching(/^allow_from\.svn: /)],
    },
    {
      name: 'tls files that do not exist',
      document: { state_dir: 's', log_dir: 'l', tls: { cert: '/nonexistent/cert.pem', key: '/nonexistent/key.pem' } },
      expected: ['tls.cert: expected a readable PEM file at /nonexistent/cert.pem, got ENOENT', 'tls.key: expected a readable PEM file at /nonexistent/key.pem, got ENOENT'],
    },
    {
      name: 'nested checkouts with a folder between them in plain text order (/srv/b, /srv/b-c, /srv/b/c)',
      document: { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, checkout: '/srv/b' }, { ...goodJob, name: 'api', checkout: '/srv/b-c' }, { ...goodJob, name: 'docs', checkout: '/srv/b/c' }] },
      expected: [expect.stringMatching(/^job "docs".checkout: expected a checkout of its own, but \/srv\/b\/c and the checkout of job "web" \(\/srv\/b\) are nested$/)],
    },
    {
      name: 'checkouts inside the folders deployhook fills: the log folder, the runs of the state folder, its checkouts/ itself',
      document: {
        state_dir: '/srv/dh',
        log_dir: '/var/log/dh',
        jobs: [
          { ...goodJob, checkout: '/var/log/dh/web' },
          { ...goodJob, name: 'api', checkout: '/srv/dh/runs' },
          { ...goodJob, name: 'all', checkout: '/srv/dh/checkouts' },
          // Elsewhere in the state folder (under the shipped unit, the folder it may write), and by default: fine.
          { ...goodJob, name: 'site', checkout: '/srv/dh/sites/site' },
          { ...goodJob, name: 'docs' },
        ],
      },
      expected: [
        'job "docs".checkout: expected a checkout of its own, but /srv/dh/checkouts/docs and the checkout of job "all" (/srv/dh/checkouts) are nested',
        'job "web".checkout: expected a checkout outside /var/log/dh, which deployhook fills itself',
        'job "api".checkout: expected a checkout outside /srv/dh/runs, which deployhook fills itself',
        'job "all".checkout: expected a checkout outside /srv/dh/checkouts, which deployhook fills itself',
      ],
    },
    {
      name: 'nothing, for default checkouts of a state folder inside the log folder',
      document: { state_dir: '/srv/dh/state', log_dir: '/srv/dh', jobs: [goodJob] },
      expected: [],
    },
    {
      name: 'API tokens too short, and with a space',
      document: { state_dir: 's', log_dir: 'l', api: { token_env: 'API_TOKEN', ui_token_env: 'UI_TOKEN' } },
      env: { API_TOKEN: 'short', UI_TOKEN: 'a-long-enough-token with-a-space' },
      expected: ['api.token_env: expected a token of at least 16 bytes (openssl rand -hex 32)', expect.stringMatching(/^api\.ui_token_env: expected the token as visible ASCII characters only/)],
    },
    {
      name: 'an API token on two lines, and one longer than a request may carry',
      document: { state_dir: 's', log_dir: 'l', api: { token_env: 'API_TOKEN', ui_token_env: 'UI_TOKEN' } },
      env: { API_TOKEN: 'a-long-enough-token\nsecond-line', UI_TOKEN: 'x'.repeat(1025) },
      expected: [expect.stringMatching(/^api\.token_env: expected the token as visible ASCII characters only/), 'api.ui_token_env: expected a token of at most 1024 bytes, got 1025'],
    },
    {
      name: 'a document that is not YAML',
      document: 'jobs: [unclosed',
      expected: [expect.stringMatching(/^: expected valid YAML: /)],
    },
  ];

  it("refuses run_as with another group than its own for a daemon that is not root: it could not switch to it", async () => {
    const uid = vi.spyOn(process, 'getuid').mockReturnValue(65534);
    const gid = vi.spyOn(process, 'getgid').mockReturnValue(65534);
    try {
      expect(await issuesOf({ state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, run_as: { user: 'nobody', group: 'daemon' } }] })).toEqual([
        'jobs[0].run_as: expected deployhook to run as root to switch to group gid 1, but it runs as uid 65534, gid 65534',
      ]);
      expect(await issuesOf({ state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, run_as: { user: 'nobody' } }] })).toEqual([]);
    } finally {
      uid.mockRestore();
      gid.mockRestore();
    }
  });

  it.each(invalid)('rejects $name, naming the path', async ({ document, env, expected }) => {
    expect(await issuesOf(document, env)).toEqual(expected);
  });

  it('never echoes a secret in an error', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'token'), 'super-secret-token-value\n');
    const file = await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, token_file: 'token', env: { API_KEY: 42 } }] });
    const error = await loadConfig(file, { WEB_SECRET: SECRET }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toContain('jobs[0].env.API_KEY');
    expect((error as ConfigError).message).not.toContain('super-secret-token-value');
    expect((error as ConfigError).message).not.toContain(SECRET);
  });

  it('refuses a secret of two lines or with another control character, from a file or a variable, and shows neither value', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'secrets'));
    await writeFile(join(dir, 'secrets', 'two'), 'old-secret-value-AAAA\nnew-secret-value-BBBB\n');
    await writeFile(join(dir, 'secrets', 'cr'), 'secret-with-a-CR\rvalue\n');
    const oneLine = 'expected one line of text, but it holds a line break or another control character (two secrets while rotating are a list of two, each in its own file or variable)';
    const jobs = [
      { ...goodJob, name: 'two', secret_env: undefined, secret_file: 'secrets/two' },
      { ...goodJob, name: 'cr', secret_env: undefined, secret_file: 'secrets/cr', token_env: 'NUL_TOKEN' },
    ];
    const error = await loadConfig(await writeConfig(dir, { state_dir: 's', log_dir: 'l', jobs }), { WEB_SECRET: SECRET, NUL_TOKEN: 'token\u0000value' }).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((issue) => `${issue.path}: ${issue.message}`)).toEqual([
      `jobs[0].secret_file: the secret file ${join(dir, 'secrets', 'two')}: ${oneLine}`,
      `jobs[1].secret_file: the secret file ${join(dir, 'secrets', 'cr')}: ${oneLine}`,
      `jobs[1].token_env: the environment variable NUL_TOKEN: ${oneLine}`,
    ]);
    for (const value of ['AAAA', 'BBBB', 'CR', 'value']) expect((error as ConfigError).message).not.toContain(value);
  });

  it("does not show a secret pasted where its file's path belongs, and shows a path or a short name", async () => {
    const notShown = 'named here (not shown: it looks like a key; is it the secret itself?)';
    const issues = async (secretFile: string) => issuesOf({ state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, secret_env: undefined, secret_file: secretFile }] });
    expect(await issues('ghsecret-PASTED-3f9a8b7c6d5e4f')).toEqual([`jobs[0].secret_file: expected a readable secret file ${notShown}, got ENOENT`]);
    expect(await issues('c2VjcmV0L3ZhbHVl/bmV4dA+=')).toEqual([`jobs[0].secret_file: expected a readable secret file ${notShown}, got ENOENT`]);
    expect(await issues('kJ8/aF3QzX9pLm2vT7rYw1NcBd4HsE6uQ0aZ')).toEqual([`jobs[0].secret_file: expected a readable secret file ${notShown}, got ENOENT`]);
    expect(await issues('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La/Sw3kPq')).toEqual([`jobs[0].secret_file: expected a readable secret file ${notShown}, got ENOENT`]);
    expect(await issues('/tmp/deployhook-8f3kq2x9vbn4/token')).toEqual(['jobs[0].secret_file: expected a readable secret file at /tmp/deployhook-8f3kq2x9vbn4/token, got ENOENT']);
    expect(await issues('github-webhook-secret')).toEqual([expect.stringMatching(/^jobs\[0\]\.secret_file: expected a readable secret file at \/.*\/github-webhook-secret, got ENOENT$/)]);
    expect(await issues('secrets/web')).toEqual([expect.stringMatching(/^jobs\[0\]\.secret_file: expected a readable secret file at \/.*\/secrets\/web, got ENOENT$/)]);
    expect(await issues('web.secret')).toEqual([expect.stringMatching(/^jobs\[0\]\.secret_file: expected a readable secret file at \/.*\/web\.secret, got ENOENT$/)]);
  });

  it('does not show a secret pasted where its variable\'s name belongs, and shows a name in capitals', async () => {
    const pasted = 'ghp_abcdefSECRETTOKEN123456';
    expect(await issuesOf({ state_dir: 's', log_dir: 'l', jobs: [{ ...goodJob, secret_env: pasted }] }, {})).toEqual([
      'jobs[0].secret_env: expected the environment variable named here (not shown: not a name in capitals, as variables are named; is it the secret itself?) to be set, but it is not',
    ]);
    expect(await issuesOf({ state_dir: 's', log_dir: 'l', jobs: [goodJob] }, {})).toEqual(['jobs[0].secret_env: expected the environment variable WEB_SECRET to be set, but it is not']);
  });
});
