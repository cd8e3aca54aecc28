import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote, git } from '../helpers/git-repo.js';
import { githubHeaders, githubPush, gitlabHeaders, gitlabPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'triggers-secret-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

describe('tag pushes', () => {
  it('deploy the peeled commit of an annotated tag for a job with tag globs, and never fire branch rules', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const commit = await remote.commit({ 'v.txt': 'release\n' });
    await remote.commit({ 'v.txt': 'later\n' });
    await git(remote.work, 'tag', '-a', 'v1.0.0', '-m', 'release 1.0.0', commit);
    await git(remote.work, 'push', '--quiet', 'origin', 'refs/tags/v1.0.0');
    const tagObject = await git(remote.work, 'rev-parse', 'refs/tags/v1.0.0');
    expect(tagObject).not.toBe(commit);
    const base = { provider: 'github', repo: 'acme/app', secret_env: 'SECRET', remote: remote.bare, command: ['sh', '-c', 'cat v.txt; echo "tag=$DEPLOYHOOK_TAG branch=$DEPLOYHOOK_BRANCH"'] };
    hook = await startDaemon(dir, { jobs: [{ ...base, name: 'release', tags: ['v*'] }, { ...base, name: 'branches', branches: ['**'] }] }, { SECRET });

    const body = JSON.stringify(githubPush({ repo: 'acme/app', ref: 'refs/tags/v1.0.0', after: tagObject }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    expect(reply.status).toBe(202);
    expect(reply.json.runs).toEqual([{ id: expect.any(String), job: 'release' }]);
    const record = await waitForRun(join(dir, 'state'), 'release', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    expect(record).toMatchObject({ status: 'succeeded', tag: 'v1.0.0', sha: tagObject, deployedSha: commit });
    const log = await readFile(record.logPath, 'utf8');
    expect(log).toContain('release\ntag=v1.0.0 branch=\n');

    const branchBody = JSON.stringify(githubPush({ repo: 'acme/app', ref: 'refs/heads/v1.0.0', after: commit }));
    const branchReply = await hook.post('github', branchBody, await githubHeaders(branchBody, SECRET));
    expect(branchReply.json.runs).toEqual([{ id: expect.any(String), job: 'branches' }]);
  });
});

describe('the skip marker', () => {
  it('queues nothing when the head commit message contains [skip deploy], and says so', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] };
    hook = await startDaemon(dir, { jobs: [job, { ...job, name: 'lab', provider: 'gitlab', repo: 'acme/lab' }] }, { SECRET });

    const payload = githubPush({ repo: 'acme/app', after: sha });
    (payload.head_commit as Record<string, unknown>).message = 'Fix typo in docs [skip deploy]';
    const body = JSON.stringify(payload);
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    expect(reply.status).toBe(200);
    expect(reply.json).toMatchObject({ runs: [], reason: 'the head commit message contains "[skip deploy]": nothing queued' });

    const lab = gitlabPush({ repo: 'acme/lab', after: sha });
    lab.commits = [{ id: sha, message: 'Docs only [skip deploy]' }];
    const labReply = await hook.post('gitlab', JSON.stringify(lab), gitlabHeaders(SECRET));
    expect(labReply.json).toMatchObject({ runs: [], reason: expect.stringContaining('[skip deploy]') });

    (payload.head_commit as Record<string, unknown>).message = 'Deploy this';
    const deployBody = JSON.stringify(payload);
    expect((await hook.post('github', deployBody, await githubHeaders(deployBody, SECRET))).status).toBe(202);
  });
});
