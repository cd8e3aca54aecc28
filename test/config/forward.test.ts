import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'a-long-enough-test-secret-0123456789';
const WHSEC = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
const job = { name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'WEB_SECRET', remote: '/srv/git/web.git', command: ['true'] };

async function load(document: Record<string, unknown>, env: Record<string, string> = {}) {
  const dir = await tempDir();
  const file = join(dir, 'deployhook.yml');
  await writeFile(file, JSON.stringify({ state_dir: 'state', log_dir: 'logs', ...document }));
  return loadConfig(file, { WEB_SECRET: SECRET, ...env });
}

async function issuesOf(document: Record<string, unknown>, env: Record<string, string> = {}): Promise<string[]> {
  try {
    await load(document, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((issue) => `${issue.path}: ${issue.message}`);
    throw error;
  }
  return [];
}

describe('fan-out settings', () => {
  it("show a key in a destination's path as ***, as a capability URL carries one", async () => {
    const token = 'AbCdEf0123456789-ghIJkl_mnOPqr9876';
    const urls = [`https://discord.example.com/api/webhooks/123456789012345678/${token}/github`, 'https://deploy-2.example.com/hooks/github-production-eu'];
    const config = await load({ jobs: [{ ...job, forward: urls.map((url) => ({ url, secret_env: 'DEPLOY_2' })) }] }, { DEPLOY_2: 'deploy-2-secret-0123456789abcdef' });

    expect(config.jobs[0]?.forward?.map((target) => [target.url, target.label])).toEqual([
      [urls[0], 'https://discord.example.com/api/webhooks/123456789012345678/***/github'],
      // Words alone are a name, not a key.
      [urls[1], urls[1]],
    ]);
  });

  it('load with their defaults, the secret read, and a URL that shows no credentials', async () => {
    const config = await load(
      {
        providers: { github: { forward: [{ url: 'https://bridge.example.com/in?token=abc', secret_env: 'BRIDGE' }] } },
        jobs: [{ ...job, forward: [{ url: 'https://user:pw@deploy-2.example.com/hooks/github', secret_env: 'DEPLOY_2', attempts: 3, backoff: '500ms', timeout: '5s' }, { url: 'https://r%40ops:50%%zz@deploy-3.example.com/', secret_env: 'DEPLOY_2' }, { url: 'https://u:%C3%A9%E0@deploy-4.example.com/', secret_env: 'DEPLOY_2' }] }],
      },
      { BRIDGE: 'bridge-secret-0123456789abcdef', DEPLOY_2: 'deploy-2-secret-0123456789abcdef' },
    );
    expect(config.forwards.github).toEqual([{ url: 'https://bridge.example.com/in?token=abc', label: 'https://bridge.example.com/in', secret: 'bridge-secret-0123456789abcdef', attempts: 6, backoffMs: 2_000, timeoutMs: 10_000 }]);
    // fetch refuses a URL with a user and password: they sign in as HTTP Basic instead.
    expect(config.jobs[0]?.forward).toEqual([
      { url: 'https://deploy-2.example.com/hooks/github', authorization: `Basic ${Buffer.from('user:pw').toString('base64')}`, label: 'https://deploy-2.example.com/hooks/github', secret: 'deploy-2-secret-0123456789abcdef', attempts: 3, backoffMs: 500, timeoutMs: 5_000 },
      // Percent escapes are decoded; a "%" that starts none is kept as it is.
      expect.objectContaining({ url: 'https://deploy-3.example.com/', authorization: `Basic ${Buffer.from('r@ops:50%%zz').toString('base64')}` }),
      // Each escape is a byte, as curl sends it, whether or not the bytes are UTF-8.
      expect.objectContaining({ url: 'https://deploy-4.example.com/', authorization: `Basic ${Buffer.from([0x75, 0x3a, 0xc3, 0xa9, 0xe0]).toString('base64')}` }),
    ]);
  });

  it('name each mistake with its path', async () => {
    const issues = await issuesOf({
      providers: { github: { forward: [{ url: 'ftp://example.com/', secret_env: 'X' }] }, nosuch: { forward: [] } },
      jobs: [{ ...job, forward: [{ url: 'https://example.com/', secret_env: 'UNSET' }, { url: 'https://example.com/', attempts: 0 }] }],
    });
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^providers\.github\.forward\[0\]\.url: expected an http\(s\) URL/),
        'providers.nosuch: unknown key',
      ]),
    );
    const jobIssues = await issuesOf({ jobs: [{ ...job, forward: [{ url: 'https://example.com/', secret_env: 'UNSET' }, { url: 'https://example.com/', attempts: 0 }] }] });
    expect(jobIssues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^jobs\[0\]\.forward\[1\]\.secret_env: expected exactly one of secret_env or secret_file/),
        expect.stringMatching(/^jobs\[0\]\.forward\[1\]\.attempts: /),
      ]),
    );
    // A relayed generic event is signed as Standard Webhooks: a key that is not whsec_ may sign what no receiver accepts.
    const generic = { name: 'ops', provider: 'generic', source: 'ops', secret_env: 'OPS_SECRET', workdir: '/tmp', command: ['true'], when: { status: 'firing' } };
    const plain = 'plain-destination-secret-0123456789';
    const warned = await load({ providers: { generic: { forward: [{ url: 'https://example.com/', secret_env: 'D' }] } }, jobs: [{ ...generic, forward: [{ url: 'https://example.com/', secret_env: 'D' }] }] }, { D: plain, OPS_SECRET: WHSEC });
    expect(warned.warnings).toEqual([
      expect.stringMatching(/^jobs\[0\]\.forward\[0\]\.secret_env: expected a Standard Webhooks secret, as a relayed generic event is signed: whsec_ and the base64 of at least 24 random bytes/),
      expect.stringMatching(/^providers\.generic\.forward\[0\]\.secret_env: expected a Standard Webhooks secret, as a relayed generic event is signed: whsec_/),
    ]);
    const quiet = await load({ providers: { generic: { forward: [{ url: 'https://example.com/', secret_env: 'D' }] }, github: { forward: [{ url: 'https://example.com/', secret_env: 'P' }] } }, jobs: [job, { ...generic, forward: [{ url: 'https://example.com/', secret_env: 'D' }] }] }, { D: WHSEC, P: plain, OPS_SECRET: WHSEC });
    expect(quiet.warnings).toEqual([]);
    const unset = await issuesOf({ jobs: [{ ...job, forward: [{ url: 'https://example.com/', secret_env: 'UNSET' }] }] });
    expect(unset).toEqual(['jobs[0].forward[0].secret_env: expected the environment variable UNSET to be set, but it is not']);
  });

  it('warn about a destination over plain http that is not loopback', async () => {
    const config = await load({ jobs: [{ ...job, forward: [{ url: 'http://deploy-2.example.com/hooks/github', secret_env: 'D' }, { url: 'http://127.0.0.1:9001/hooks/github', secret_env: 'D' }] }] }, { D: 'downstream-secret-0123456789abcdef' });
    expect(config.warnings).toEqual([expect.stringMatching(/^jobs\[0\]\.forward\[0\]\.url: relays deliveries over plain http to deploy-2\.example\.com/)]);
  });
});
