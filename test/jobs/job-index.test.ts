import { describe, expect, it } from 'vitest';
import type { JobConfig } from '../../src/config/types.js';
import { JobIndex } from '../../src/jobs/job-index.js';
import type { PushEvent } from '../../src/providers/types.js';

const job = (name: string, branches: string[], tags: string[] = []) => ({ name, provider: 'github', repo: 'Acme/App', repoKey: 'acme/app', branches, tags }) as unknown as JobConfig;
const push = (branch: string): PushEvent => ({ provider: 'github', deliveryId: 'd', repo: 'ACME/app', ref: `refs/heads/${branch}`, branch, sha: 'a'.repeat(40), before: '0'.repeat(40), pusher: 'p' });

describe('matching a push to jobs', () => {
  const cases: Array<{ globs: string[]; branch: string; wanted: boolean }> = [
    { globs: ['main'], branch: 'main', wanted: true },
    { globs: ['main'], branch: 'main2', wanted: false },
    { globs: ['release/*'], branch: 'release/1.2', wanted: true },
    { globs: ['release/*'], branch: 'release/1.2/hotfix', wanted: false },
    { globs: ['release/**'], branch: 'release/1.2/hotfix', wanted: true },
    { globs: ['**'], branch: 'feature/.hidden', wanted: true },
    { globs: ['**', '!wip/**'], branch: 'wip/x', wanted: false },
    { globs: ['**', '!wip/**'], branch: 'feature/x', wanted: true },
    { globs: ['main', '!release/*'], branch: 'feature/x', wanted: false },
    { globs: ['*'], branch: '$(touch pwned)', wanted: true },
  ];

  it.each(cases)('globs $globs want branch $branch: $wanted', ({ globs, branch, wanted }) => {
    const candidate = job('app', globs);
    const index = new JobIndex([candidate]);
    expect(index.candidates('github', 'acme/APP')).toEqual([candidate]);
    expect(index.wanting([candidate], push(branch))).toEqual(wanted ? [candidate] : []);
  });

  it('lets branch globs match only branches and tag globs only tags', () => {
    const branchesOnly = job('branches', ['**']);
    const tagsOnly = job('tags', [], ['v*']);
    const index = new JobIndex([branchesOnly, tagsOnly]);
    const tagPush: PushEvent = { ...push('x'), ref: 'refs/tags/v1.2.0', tag: 'v1.2.0' };
    delete tagPush.branch;
    expect(index.wanting([branchesOnly, tagsOnly], tagPush)).toEqual([tagsOnly]);
    expect(index.wanting([branchesOnly, tagsOnly], push('v1.2.0'))).toEqual([branchesOnly]);
  });

  it('only looks at the jobs of the delivery\'s own provider and repository', () => {
    const index = new JobIndex([job('app', ['**']), { ...job('other', ['**']), repoKey: 'acme/other' }, { ...job('lab', ['**']), provider: 'gitlab' }]);
    expect(index.candidates('github', 'acme/app').map((candidate) => candidate.name)).toEqual(['app']);
    expect(index.candidates('gitlab', 'acme/app').map((candidate) => candidate.name)).toEqual(['lab']);
    expect(index.candidates('github', 'acme/none')).toEqual([]);
  });
});
