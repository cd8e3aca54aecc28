import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { newSigningSecret } from '../helpers/standard-webhooks.js';
import { tempDir } from '../helpers/tmp.js';

const SIGNING = newSigningSecret();
const ENV = { ALERTS_SECRET: SIGNING, SIGNING_TOKEN: SIGNING, LAB_TOKEN: 'gitlab-token-0123456789abcdef', SHORT: `whsec_${Buffer.alloc(16, 7).toString('base64')}` };

const generic = { name: 'remediate-disk', provider: 'generic', source: 'alertmanager', secret_env: 'ALERTS_SECRET', workdir: 'remediation', command: ['ansible-playbook', 'disk.yml'] };
const withRemote = { ...generic, workdir: undefined, remote: 'git@example.com:ops/playbooks.git', branches: ['main'] };
const gitlab = { name: 'lab', provider: 'gitlab', repo: 'acme/lab', branches: ['main'], remote: 'git@gitlab.com:acme/lab.git', command: ['make'] };

async function load(document: Record<string, unknown>, jobs: unknown[]): Promise<Config | string[]> {
  const dir = await tempDir();
  await mkdir(join(dir, 'remediation'));
  const file = join(dir, 'deployhook.yml');
  await writeFile(file, JSON.stringify({ state_dir: 's', log_dir: 'l', ...document, jobs }));
  try {
    return await loadConfig(file, ENV);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((issue) => `${issue.path}: ${issue.message}`);
    throw error;
  }
}

const issuesOf = async (job: Record<string, unknown>) => (await load({}, [job])) as string[];

describe('a generic job', () => {
  it('loads without a remote: the workdir relative to the config file, the source as its key, `when` values as lists', async () => {
    const config = (await load({}, [{ ...generic, when: { status: 'firing', 'commonLabels.severity': ['critical', 'page'] }, fields: { ALERT_NAME: 'commonLabels.alertname' } }])) as Config;
    const [job] = config.jobs;
    expect(job).toMatchObject({ provider: 'generic', repo: '', repoKey: 'alertmanager', secrets: [SIGNING], checkout: join(config.file, '..', 'remediation'), branches: [] });
    expect(job?.remote).toBeUndefined();
    expect(job?.workdir).toBeUndefined();
    expect(job?.event).toEqual({ source: 'alertmanager', when: [{ path: 'status', values: ['firing'] }, { path: 'commonLabels.severity', values: ['critical', 'page'] }], fields: { ALERT_NAME: 'commonLabels.alertname' } });
  });

  it('loads with a remote and the one branch each event deploys', async () => {
    const config = (await load({}, [withRemote])) as Config;
    expect(config.jobs[0]).toMatchObject({ remote: 'git@example.com:ops/playbooks.git', branches: ['main'], checkout: join(config.file, '..', 's', 'checkouts', 'remediate-disk') });
  });

  it.each([
    { job: { ...generic, repo: 'acme/web' }, issue: 'jobs[0].repo: expected no `repo` on a generic job: events come from its `source` (POST /hooks/generic/<source>), not from a repository' },
    { job: { ...generic, source: undefined }, issue: 'jobs[0].source: expected a source such as `alertmanager` (the end of POST /hooks/generic/<source>), but it is missing' },
    { job: { ...generic, source: 'alert manager' }, issue: 'jobs[0].source: expected 1 to 100 letters, digits, ".", "_" or "-" (the end of POST /hooks/generic/<source>), got "alert manager"' },
    { job: { ...generic, tags: ['v*'] }, issue: 'jobs[0].tags: expected no `tags` on a generic job: with a `remote`, each event deploys the tip of its one branch' },
    { job: { ...generic, workdir: undefined }, issue: 'jobs[0].workdir: expected `workdir`, the folder the command runs in (or a `remote` to check out), but it is missing' },
    { job: { ...generic, branches: ['main'] }, issue: 'jobs[0].branches: expected no `branches` on a generic job without a `remote`: it runs in its workdir, without git' },
    { job: { ...generic, ssh_key: '/etc/deployhook/keys/ops' }, issue: 'jobs[0].ssh_key: expected no `ssh_key` on a generic job without a `remote`: nothing is fetched' },
    { job: { ...withRemote, branches: undefined }, issue: 'jobs[0].branches: expected exactly one branch, whose tip each event deploys, such as [main], but it is missing' },
    { job: { ...withRemote, branches: ['main', 'staging'] }, issue: 'jobs[0].branches: expected exactly one branch, whose tip each event deploys, such as [main], got 2' },
    { job: { ...withRemote, branches: ['release/*'] }, issue: 'jobs[0].branches[0]: expected a plain branch name such as main, not a glob, got "release/*"' },
    { job: { ...generic, secret_env: undefined, signing_token_env: 'SIGNING_TOKEN' }, issue: 'jobs[0].signing_token_env: expected secret_env or secret_file on a generic job (a whsec_ secret); signing tokens are for gitlab jobs' },
    { job: { ...generic, secret_env: 'LAB_TOKEN' }, issue: 'jobs[0].secret_env: expected a Standard Webhooks secret: whsec_ and the base64 of at least 24 random bytes (make one with: echo "whsec_$(openssl rand -base64 32)"), got something else' },
    { job: { ...generic, when: { status: { is: 'firing' } } }, issue: 'jobs[0].when.status: expected a string, a number, true/false, or a list of them' },
    { job: { ...generic, when: { 'alerts..status': 'firing' } }, issue: 'jobs[0].when.alerts..status: expected a dotted path into the payload such as `commonLabels.severity`, got "alerts..status"' },
    { job: { ...generic, fields: { 'ALERT-NAME': 'commonLabels.alertname' } }, issue: 'jobs[0].fields.ALERT-NAME: expected an environment variable name such as ALERT_NAME, got "ALERT-NAME"' },
  ])('refuses $issue', async ({ job, issue }) => {
    expect(await issuesOf(job)).toEqual([issue]);
  });

  it('refuses a workdir that is not an existing folder, naming the path it looked at', async () => {
    const issues = await issuesOf({ ...generic, workdir: 'nowhere' });
    expect(issues).toEqual([expect.stringMatching(/^jobs\[0\]\.workdir: expected an existing folder to run the command in at \/.*\/nowhere, got ENOENT$/)]);
  });

  it('takes any variable name for a field: the command sees it as DEPLOYHOOK_FIELD_<name>, so no name chooses what runs', async () => {
    const names = ['PATH', 'LD_PRELOAD', 'NODE_OPTIONS', 'ERL_AFLAGS', 'RESTIC_PASSWORD_COMMAND', 'DEPLOYHOOK_SHA'];
    const config = (await load({}, [{ ...generic, env: { PATH: '/opt/bin' }, fields: Object.fromEntries(names.map((name) => [name, 'status'])) }])) as Config;
    expect(config.jobs[0]?.event?.fields).toEqual(Object.fromEntries(names.map((name) => [name, 'status'])));
  });

  it('keeps generic keys off jobs of Git hosts, and unknown keys are still errors', async () => {
    expect(await issuesOf({ ...gitlab, secret_env: 'LAB_TOKEN', source: 'alertmanager', when: { status: 'firing' } })).toEqual([
      'jobs[0].source: expected `source` only on a generic job; a gitlab job names its `repo`',
      'jobs[0].when: expected `when` only on a generic job; a gitlab job deploys the pushes its `branches` and `tags` match',
    ]);
    expect(await issuesOf({ ...generic, colour: 'blue' })).toEqual([expect.stringMatching(/^jobs\[0\]\.colour: unknown key \(expected one of: .*source, when, fields, signing_token_env, signing_token_file/)]);
  });
});

describe('GitLab signing tokens', () => {
  it('load into signingTokens instead of secrets, a list while rotating', async () => {
    const config = (await load({}, [{ ...gitlab, signing_token_env: ['SIGNING_TOKEN', 'ALERTS_SECRET'] }])) as Config;
    expect(config.jobs[0]).toMatchObject({ secrets: [], signingTokens: [SIGNING, SIGNING] });
  });

  it.each([
    { job: { ...gitlab }, issue: 'jobs[0].secret_env: expected exactly one of secret_env, secret_file, signing_token_env or signing_token_file, got neither' },
    { job: { ...gitlab, secret_env: 'LAB_TOKEN', signing_token_env: 'SIGNING_TOKEN' }, issue: 'jobs[0].signing_token_env: expected exactly one of secret_env, secret_file, signing_token_env or signing_token_file, got secret_env and signing_token_env' },
    { job: { ...gitlab, signing_token_env: ['SIGNING_TOKEN', 'LAB_TOKEN'] }, issue: 'jobs[0].signing_token_env[1]: expected a GitLab signing token: whsec_ and the base64 of at least 24 random bytes (make one with: echo "whsec_$(openssl rand -base64 32)"), got something else' },
    { job: { ...gitlab, signing_token_env: 'SHORT' }, issue: 'jobs[0].signing_token_env: expected a GitLab signing token: whsec_ and the base64 of at least 24 random bytes (make one with: echo "whsec_$(openssl rand -base64 32)"), got something else' },
    { job: { ...gitlab, provider: 'github', secret_env: 'LAB_TOKEN', signing_token_env: 'SIGNING_TOKEN' }, issue: 'jobs[0].signing_token_env: expected signing tokens only on a gitlab job; a github job verifies with secret_env or secret_file' },
  ])('refuses $issue', async ({ job, issue }) => {
    expect(await issuesOf(job)).toEqual([issue]);
  });

  it('never quotes a token in a message', async () => {
    const issues = await issuesOf({ ...gitlab, signing_token_env: 'LAB_TOKEN' });
    expect(issues.join('\n')).not.toContain(ENV.LAB_TOKEN);
  });
});

describe('timestamp_tolerance', () => {
  it('is five minutes unless set, and must be longer than zero', async () => {
    expect(((await load({}, [])) as Config).timestampToleranceMs).toBe(5 * 60_000);
    expect(((await load({ timestamp_tolerance: '90s' }, [])) as Config).timestampToleranceMs).toBe(90_000);
    expect(await load({ timestamp_tolerance: '0s' }, [])).toEqual(['timestamp_tolerance: expected a tolerance longer than zero']);
  });
});
