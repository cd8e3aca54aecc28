import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GitSyncError } from '../../src/errors.js';
import { syncCheckout } from '../../src/git/sync.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { generateKey, SSHD, startSshd } from '../helpers/sshd.js';
import { tempDir } from '../helpers/tmp.js';
import { gitEnv, syncOptions } from './sync-fixture.js';

// On CI a missing sshd fails the suite (startSshd says what to install); elsewhere it skips.
const skip = !existsSync(SSHD) && !process.env['CI'];

async function setup() {
  const root = await tempDir();
  const remote = await createRemote(root);
  const sha = await remote.commit({ 'app.txt': 'over ssh\n' });
  const sshd = await startSshd();
  return { root, remote, sha, sshd, checkout: join(root, 'checkout'), env: await gitEnv(root) };
}

describe.skipIf(skip)('syncCheckout over SSH (needs /usr/sbin/sshd: apt-get install openssh-server)', () => {
  it('checks out the exact commit with the deploy key and the pinned host key', async () => {
    const { remote, sha, sshd, checkout, env } = await setup();
    const auth = { sshKey: sshd.deployKey, knownHosts: sshd.knownHosts };

    const result = await syncCheckout(syncOptions({ remote: sshd.url(remote.bare), checkout, sha, env, auth }));

    expect(result.sha).toBe(sha);
    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
    expect(await readFile(join(checkout, 'app.txt'), 'utf8')).toBe('over ssh\n');
  });

  it('refuses a server whose host key differs from known_hosts and checks nothing out', async () => {
    const { root, remote, sha, sshd, checkout, env } = await setup();
    const impostor = await generateKey(join(root, 'impostor_host_key'));
    const knownHosts = join(root, 'known_hosts');
    await writeFile(knownHosts, `[127.0.0.1]:${sshd.port} ${impostor}\n`);

    const sync = syncCheckout(syncOptions({ remote: sshd.url(remote.bare), checkout, sha, env, auth: { sshKey: sshd.deployKey, knownHosts } }));

    await expect(sync).rejects.toBeInstanceOf(GitSyncError);
    await expect(sync).rejects.toThrow(/host key verification failed/i);
    expect(existsSync(join(checkout, '.git'))).toBe(false);
  });

  it('refuses a server that is in no known_hosts file when none is configured', async () => {
    const { remote, sha, sshd, checkout, env } = await setup();

    const sync = syncCheckout(syncOptions({ remote: sshd.url(remote.bare), checkout, sha, env, auth: { sshKey: sshd.deployKey } }));

    await expect(sync).rejects.toThrow(/host key verification failed/i);
    expect(existsSync(join(checkout, '.git'))).toBe(false);
  });

  it('fails with GitSyncError when the key is not authorized on the server', async () => {
    const { root, remote, sha, sshd, checkout, env } = await setup();
    const stranger = join(root, 'id_stranger');
    await generateKey(stranger);

    const sync = syncCheckout(syncOptions({ remote: sshd.url(remote.bare), checkout, sha, env, auth: { sshKey: stranger, knownHosts: sshd.knownHosts } }));

    await expect(sync).rejects.toBeInstanceOf(GitSyncError);
    await expect(sync).rejects.toThrow(/permission denied \(publickey\)/i);
    expect(existsSync(join(checkout, '.git'))).toBe(false);
  });

  it('fetches later commits over the same connection settings', async () => {
    const { remote, sha, sshd, checkout, env } = await setup();
    const auth = { sshKey: sshd.deployKey, knownHosts: sshd.knownHosts };
    await syncCheckout(syncOptions({ remote: sshd.url(remote.bare), checkout, sha, env, auth }));
    const next = await remote.commit({ 'app.txt': 'next\n' });

    await syncCheckout(syncOptions({ remote: sshd.url(remote.bare), checkout, sha: next, env, auth }));

    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(next);
  });
});
