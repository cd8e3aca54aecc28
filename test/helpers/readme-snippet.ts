import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { REPO_ROOT } from './cli.js';
import { tempDir } from './tmp.js';

/** The first ```yaml block of the README section under `heading` (a `###` line), as written. */
export async function readmeYaml(heading: string): Promise<string> {
  const readme = await readFile(join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n${heading}\n`);
  const block = start === -1 ? null : /```yaml\n([\s\S]*?)```/.exec(readme.slice(start).split(/\n#{2,3} /)[1] ?? '');
  if (!block?.[1]) throw new Error(`no yaml block under ${JSON.stringify(heading)} in README.md`);
  return block[1];
}

/** Loads that snippet, completed with a state and log folder, the way `deployhook serve` does. */
export async function loadReadmeSnippet(heading: string, env: Record<string, string>): Promise<Config> {
  const dir = await tempDir();
  const snippet = yaml.load(await readmeYaml(heading)) as Record<string, unknown>;
  const file = join(dir, 'deployhook.yml');
  await writeFile(file, yaml.dump({ state_dir: 'state', log_dir: 'logs', ...snippet }));
  return loadConfig(file, env);
}
