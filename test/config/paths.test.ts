import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'a-long-enough-test-secret-0123456789';
const job = { name: 'web', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: 'WEB_SECRET', remote: 'git@github.com:acme/web.git', command: ['make', 'deploy'] };

async function load(paths: unknown): Promise<Config | string[]> {
  const dir = await tempDir();
  const file = join(dir, 'deployhook.yml');
  await writeFile(file, JSON.stringify({ state_dir: 's', log_dir: 'l', jobs: [{ ...job, ...(paths === undefined ? {} : { paths }) }] }));
  try {
    return await loadConfig(file, { WEB_SECRET: SECRET });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((issue) => `${issue.path}: ${issue.message}`);
    throw error;
  }
}

describe('the paths key of a job', () => {
  it('is optional, and keeps includes and exclusions as written, also a list of only exclusions', async () => {
    expect(((await load(undefined)) as Config).jobs[0]?.paths).toBeUndefined();
    expect(((await load(['deploy/**', '!deploy/README.md'])) as Config).jobs[0]?.paths).toEqual(['deploy/**', '!deploy/README.md']);
    expect(((await load(['!docs/**'])) as Config).jobs[0]?.paths).toEqual(['!docs/**']);
  });

  it.each([
    { paths: [], issue: 'jobs[0].paths: expected at least one file glob' },
    { paths: 'deploy/**', issue: 'jobs[0].paths: expected a list of file globs such as ["deploy/**", "!docs/**"], got a string' },
    { paths: ['deploy/**', ''], issue: 'jobs[0].paths[1]: expected a non-empty glob' },
    { paths: ['!'], issue: 'jobs[0].paths[0]: expected a glob after "!", such as "!docs/**"' },
    { paths: ['/deploy/**'], issue: 'jobs[0].paths[0]: expected a path relative to the repository root such as "deploy/**", got "/deploy/**"' },
    { paths: ['!docs/'], issue: 'jobs[0].paths[0]: expected a glob of files such as "!docs/**", got "!docs/", which matches no file' },
  ])('rejects $paths with the path of the problem', async ({ paths, issue }) => {
    expect(await load(paths)).toEqual([issue]);
  });
});
