import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { giteaHeaders, giteaPush, githubHeaders } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'gitea-secret-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

async function start() {
  const dir = await tempDir();
  const remote = await createRemote(dir);
  const sha = await remote.commit({ 'a.txt': 'a\n' });
  const job = { repo: 'acme/infra', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] };
  hook = await startDaemon(dir, { jobs: [{ ...job, name: 'gitea-infra', provider: 'gitea' }, { ...job, name: 'forgejo-infra', provider: 'forgejo' }] }, { SECRET });
  return { dir, daemon: hook, sha };
}

const without = (headers: Record<string, string>, name: string) => Object.fromEntries(Object.entries(headers).filter(([key]) => key !== name));

describe('POST /hooks/gitea and /hooks/forgejo', () => {
  it('deploys a push signed as Gitea signs it, and one signed as Forgejo signs it', async () => {
    const { dir, daemon, sha } = await start();
    const json = JSON.stringify(giteaPush({ repo: 'acme/infra', after: sha }));
    const gitea = await daemon.post('gitea', json, giteaHeaders(json, SECRET));
    expect(gitea.status).toBe(202);
    expect(await waitForRun(join(dir, 'state'), 'gitea-infra', (gitea.json.runs as Array<{ id: string }>)[0]?.id ?? '')).toMatchObject({ status: 'succeeded', deployedSha: sha, trigger: { provider: 'gitea', pusher: 'ops' } });
    const forgejo = await daemon.post('forgejo', json, giteaHeaders(json, SECRET, 'forgejo'));
    expect(forgejo.status).toBe(202);
    expect(forgejo.json.runs).toEqual([{ id: expect.any(String), job: 'forgejo-infra' }]);
  });

  it('verifies a form-encoded delivery against the JSON it carries, as Gitea signs it', async () => {
    const { daemon, sha } = await start();
    const json = JSON.stringify(giteaPush({ repo: 'acme/infra', after: sha }));
    const form = `payload=${encodeURIComponent(json)}`;
    expect((await daemon.post('gitea', form, { ...giteaHeaders(json, SECRET), 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(202);
    expect((await daemon.post('gitea', form, { ...giteaHeaders(form, SECRET), 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(401);
  });

  it('takes a push from deployhook send, signed the way the job\'s host signs', async () => {
    const { daemon, sha } = await start();
    for (const [job, provider] of [['gitea-infra', 'gitea'], ['forgejo-infra', 'forgejo']] as const) {
      const sent = await runCli(['send', job, '--config', daemon.config.file, '--url', `${daemon.url}/hooks/${provider}`], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET } });
      expect(sent.stderr).toBe('');
      expect(sent.stdout).toContain(`sent a signed push of refs/heads/main at ${sha}`);
      expect(sent.stdout).toMatch(new RegExp(`queued run [0-9a-z]{26} of job ${job}`));
    }
  });

  const refused: Array<{ name: string; headers: (json: string) => Promise<Record<string, string>> | Record<string, string> }> = [
    { name: 'the empty header Gitea sends for a hook without a secret', headers: (json) => ({ ...giteaHeaders(json, SECRET), 'X-Gitea-Signature': '' }) },
    { name: 'no signature header', headers: (json) => without(giteaHeaders(json, SECRET), 'X-Gitea-Signature') },
    { name: 'the wrong secret', headers: (json) => giteaHeaders(json, 'not-the-secret-0123456789') },
    { name: "GitHub's header style (a sha256= prefix)", headers: async (json) => ({ ...giteaHeaders(json, SECRET), 'X-Gitea-Signature': (await githubHeaders(json, SECRET))['x-hub-signature-256'] ?? '' }) },
    { name: "GitHub's header instead of Gitea's", headers: async (json) => ({ ...without(giteaHeaders(json, SECRET), 'X-Gitea-Signature'), 'x-hub-signature-256': (await githubHeaders(json, SECRET))['x-hub-signature-256'] ?? '' }) },
  ];

  it.each(refused)('answers 401 to $name', async ({ headers }) => {
    const { daemon, sha } = await start();
    const json = JSON.stringify(giteaPush({ repo: 'acme/infra', after: sha }));
    const reply = await daemon.post('gitea', json, await headers(json));
    expect(reply.status).toBe(401);
    expect(reply.json.error).toBe('signature verification failed');
  });
});
