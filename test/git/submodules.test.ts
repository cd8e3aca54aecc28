import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { syncCheckout } from '../../src/git/sync.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { tempDir } from '../helpers/tmp.js';
import { gitEnv, syncOptions } from './sync-fixture.js';

// git >= 2.38 refuses file:// submodules unless the operator allows them in their config.
const ALLOW_FILE_PROTOCOL = '[protocol "file"]\n\tallow = always\n';

/** A remote whose `lib/` is a submodule; returns the commit that records `recorded` in it. */
async function remoteWithSubmodule(root: string) {
  const library = await createRemote(root, 'library');
  const recorded = await library.commit({ 'lib.txt': 'recorded\n' });
  const app = await createRemote(root, 'app');
  await git(app.work, '-c', 'protocol.file.allow=always', 'submodule', 'add', '--quiet', '--', library.bare, 'lib');
  const sha = await app.commit({ 'app.txt': 'app\n' }, 'add the library');
  await library.commit({ 'lib.txt': 'newer, not recorded\n' });
  return { app, sha, recorded };
}

/** That remote, a checkout folder beside it, and git's environment with file:// submodules allowed. */
async function checkoutWithSubmodule() {
  const root = await tempDir();
  const remote = await remoteWithSubmodule(root);
  return { ...remote, checkout: join(root, 'checkout'), env: await gitEnv(root, ALLOW_FILE_PROTOCOL) };
}

describe('syncCheckout with submodules', () => {
  it('checks out each submodule at the commit the superproject records', async () => {
    const { app, sha, recorded, checkout, env } = await checkoutWithSubmodule();

    await syncCheckout(syncOptions({ remote: app.bare, checkout, sha, env, submodules: true }));

    expect(await git(checkout, 'rev-parse', 'HEAD')).toBe(sha);
    expect(await git(join(checkout, 'lib'), 'rev-parse', 'HEAD')).toBe(recorded);
    expect(await readFile(join(checkout, 'lib', 'lib.txt'), 'utf8')).toBe('recorded\n');
  });

  it('removes leftovers and local edits inside submodules', async () => {
    const { app, sha, checkout, env } = await checkoutWithSubmodule();
    await syncCheckout(syncOptions({ remote: app.bare, checkout, sha, env, submodules: true }));
    await writeFile(join(checkout, 'lib', 'lib.txt'), 'edited\n');
    await writeFile(join(checkout, 'lib', 'untracked.txt'), 'left over\n');

    await syncCheckout(syncOptions({ remote: app.bare, checkout, sha, env, submodules: true }));

    expect(await readFile(join(checkout, 'lib', 'lib.txt'), 'utf8')).toBe('recorded\n');
    expect(existsSync(join(checkout, 'lib', 'untracked.txt'))).toBe(false);
  });

  it("removes a submodule's index lock that a killed update left, once git complains of it", async () => {
    const { app, sha, recorded, checkout, env } = await checkoutWithSubmodule();
    await syncCheckout(syncOptions({ remote: app.bare, checkout, sha, env, submodules: true }));
    await writeFile(join(checkout, 'lib', 'lib.txt'), 'edited\n');
    await writeFile(join(checkout, '.git', 'modules', 'lib', 'index.lock'), '');

    const options = syncOptions({ remote: app.bare, checkout, sha, env, submodules: true });
    await syncCheckout(options);

    expect(options.collected.text()).toContain('[deployhook] removed the stale lock .git/modules/lib/index.lock left by an interrupted run\n');
    expect(existsSync(join(checkout, '.git', 'modules', 'lib', 'index.lock'))).toBe(false);
    expect(await git(join(checkout, 'lib'), 'rev-parse', 'HEAD')).toBe(recorded);
    expect(await readFile(join(checkout, 'lib', 'lib.txt'), 'utf8')).toBe('recorded\n');
  });

  it('leaves submodules alone when they are not asked for', async () => {
    const root = await tempDir();
    const { app, sha } = await remoteWithSubmodule(root);
    const checkout = join(root, 'checkout');

    await syncCheckout(syncOptions({ remote: app.bare, checkout, sha, env: await gitEnv(root) }));

    expect(existsSync(join(checkout, 'lib', 'lib.txt'))).toBe(false);
  });
});
