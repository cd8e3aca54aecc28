import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { GitSyncError } from '../../src/errors.js';
import { syncCheckout } from '../../src/git/sync.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { startGitHttpServer } from '../helpers/git-http-server.js';
import { tempDir } from '../helpers/tmp.js';
import { gitEnv, syncOptions } from './sync-fixture.js';

const USERNAME = 'deploy-bot';
const TOKEN = 'glpat-Secret-Token-3f9a1c';

async function setup() {
  const root = await tempDir();
  const remote = await createRemote(root);
  const sha = await remote.commit({ 'app.txt': 'over http\n' });
  const server = await startGitHttpServer({ projectRoot: root, username: USERNAME, token: TOKEN });
  return { remote, sha, server, url: server.url('remote.git'), checkout: join(root, 'checkout'), env: await gitEnv(root) };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const caught: unknown = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(caught instanceof Error)) throw new Error('Expected the sync to fail, but it succeeded');
  return caught;
}

describe('syncCheckout over HTTP with a token', () => {
  it('checks out the exact commit, sending the token only as Basic auth', async () => {
    const { sha, server, url, checkout, env } = await setup();
    const options = syncOptions({ remote: url, checkout, sha, env, auth: { username: USERNAME, password: TOKEN } });

    const result = await syncCheckout(options);

    expect(result.sha).toBe(sha);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('over http\n');
    const basic = `Basic ${Buffer.from(`${USERNAME}:${TOKEN}`).toString('base64')}`;
    expect(server.authorizations).toContain(basic);
    expect(options.collected.text()).toContain(`$ git -c credential.${new URL(url).origin}.helper= clone`);
    expect(options.collected.text()).not.toContain(TOKEN);
  });

  it("never hands the token to a credential helper of the user's git config (helper = store would save it in plain text)", async () => {
    const { sha, url, checkout } = await setup();
    const root = await tempDir();
    const env = await gitEnv(root, '[credential]\n\thelper = store\n');
    const options = syncOptions({ remote: url, checkout, sha, env, auth: { username: USERNAME, password: TOKEN } });
    // Twice: a helper is told a credential worked once git has used it.
    expect((await syncCheckout(options)).sha).toBe(sha);
    expect((await syncCheckout(syncOptions({ remote: url, checkout, sha, env, auth: { username: USERNAME, password: TOKEN } }))).sha).toBe(sha);
    expect(existsSync(join(root, 'home', '.git-credentials'))).toBe(false);
    expect(options.collected.text()).toContain(`$ git -c credential.${new URL(url).origin}.helper= clone`);
  });

  it('keeps the remote URL in the checkout free of credentials', async () => {
    const { sha, url, checkout, env } = await setup();
    await syncCheckout(syncOptions({ remote: url, checkout, sha, env, auth: { username: USERNAME, password: TOKEN } }));

    expect(await git(checkout, 'config', '--get', 'remote.origin.url')).toBe(url);
    expect(await readFile(join(checkout, '.git', 'config'), 'utf8')).not.toContain(TOKEN);
  });

  it('fails promptly with GitSyncError on a wrong token, without revealing it', async () => {
    const { sha, url, checkout, env } = await setup();
    const wrong = 'wrong-Token-77c1e0';
    const options = syncOptions({ remote: url, checkout, sha, env, auth: { username: USERNAME, password: wrong } });
    const startedAt = Date.now();

    const error = await failure(syncCheckout(options));

    expect(error).toBeInstanceOf(GitSyncError);
    expect(error.message).toMatch(/authentication failed/i);
    expect(Date.now() - startedAt).toBeLessThan(10_000);
    for (const text of [error.message, String(error.stack), options.collected.text()]) {
      expect(text).not.toContain(wrong);
    }
  });

  it('fails instead of prompting when the server wants credentials and none are configured', async () => {
    const { sha, url, checkout, env } = await setup();

    const error = await failure(syncCheckout(syncOptions({ remote: url, checkout, sha, env })));

    expect(error).toBeInstanceOf(GitSyncError);
    expect(error.message).toMatch(/terminal prompts disabled|authentication failed/i);
  });

  it('fetches a newer commit with the token on a later run without leaking it', async () => {
    const { remote, sha, url, checkout, env } = await setup();
    const auth = { username: USERNAME, password: TOKEN };
    await syncCheckout(syncOptions({ remote: url, checkout, sha, env, auth }));
    const next = await remote.commit({ 'app.txt': 'newer\n' });
    const options = syncOptions({ remote: url, checkout, sha: next, env, auth });

    await syncCheckout(options);

    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(next);
    expect(options.collected.text()).toContain(`$ git -c credential.${new URL(url).origin}.helper= fetch`);
    expect(options.collected.text()).not.toContain(TOKEN);
  });

  it('never sends the token to another host, such as a submodule URL the repository names', async () => {
    const root = await tempDir();
    const library = await createRemote(root, 'library');
    await library.commit({ 'lib.txt': 'library\n' });
    const elsewhere = await startGitHttpServer({ projectRoot: root, username: 'someone', token: 'another-token-0000' });
    const app = await createRemote(root, 'app');
    const server = await startGitHttpServer({ projectRoot: root, username: USERNAME, token: TOKEN });
    await git(app.work, '-c', 'protocol.file.allow=always', 'submodule', 'add', '--quiet', '--', library.bare, 'lib');
    await git(app.work, 'config', '--file', '.gitmodules', 'submodule.lib.url', elsewhere.url('library.git'));
    const sha = await app.commit({ '.gitmodules': await readFile(join(app.work, '.gitmodules'), 'utf8') }, 'point the submodule at another host');
    const options = syncOptions({ remote: server.url('app.git'), checkout: join(root, 'checkout'), sha, env: await gitEnv(root), submodules: true, auth: { username: USERNAME, password: TOKEN } });

    const error = await failure(syncCheckout(options));

    expect(error).toBeInstanceOf(GitSyncError);
    expect(server.authorizations).toContain(`Basic ${Buffer.from(`${USERNAME}:${TOKEN}`).toString('base64')}`);
    expect(elsewhere.authorizations.length).toBeGreaterThan(0);
    for (const header of elsewhere.authorizations) expect(header ?? '').not.toContain(Buffer.from(TOKEN).toString('base64').slice(0, 8));
    expect(elsewhere.authorizations.filter((header) => header !== undefined)).toEqual([]);
    expect(options.collected.text()).toContain('not answering a credential prompt');
  });
});

describe('the credential prompt helper (libexec/git-askpass.sh)', () => {
  const askpass = join(import.meta.dirname, '..', '..', 'libexec', 'git-askpass.sh');
  const env = { PATH: process.env.PATH ?? '', DEPLOYHOOK_GIT_ORIGIN: 'https://git.example.com', DEPLOYHOOK_GIT_USERNAME: USERNAME, DEPLOYHOOK_GIT_PASSWORD: TOKEN };
  const answer = (prompt: string) =>
    promisify(execFile)(askpass, [prompt], { env }).then(
      ({ stdout }) => ({ answered: stdout.trim() }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ exit: error.code, stdout: error.stdout, stderr: error.stderr?.trim() }),
    );

  it("answers its own host's prompts", async () => {
    expect(await answer("Username for 'https://git.example.com': ")).toEqual({ answered: USERNAME });
    expect(await answer(`Password for 'https://${USERNAME}@git.example.com': `)).toEqual({ answered: TOKEN });
  });

  it('refuses a prompt for another host, also one whose user name pretends to be the right host', async () => {
    // What git before the CVE-2024-50349 fix shows for a submodule URL https://x%40git.example.com%2F@evil.example/r.git.
    expect(await answer("Password for 'https://x@git.example.com/@evil.example': ")).toEqual({ exit: 1, stdout: '', stderr: 'deployhook: not answering a credential prompt for an address with more than one @' });
    expect(await answer("Password for 'https://git.example.com/x@evil.example': ")).toMatchObject({ exit: 1, stdout: '' });
    expect(await answer("Password for 'https://deploy-bot@evil.example': ")).toMatchObject({ exit: 1, stdout: '' });
  });
});
