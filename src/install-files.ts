import { access, constants } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Config } from './config/types.js';
import { ASKPASS_SCRIPT } from './git/git-env.js';
import { PLACE_WORKER } from './store/file-placer.js';

/** How an install is laid out: what to copy, for a message. */
const LAYOUT = `deployhook runs from an install folder (here ${dirname(dirname(PLACE_WORKER))}) that holds dist/ (by that name) and libexec/ beside it: copy or install the whole folder, or run \`npm ci\` in it, which builds dist/ (then \`npm prune --omit=dev\` where the development dependencies are not kept)`;

/**
 * The files of the install the daemon with `config` needs beside its bundle, each missing one
 * as a sentence: the thread that puts files in place (without it every acknowledged change
 * would stay in the journal only), and git's askpass helper when a job fetches with a token.
 */
export async function missingInstallFiles(config: Pick<Config, 'jobs'>): Promise<string[]> {
  const needed: Array<{ file: string; mode: number; what: string }> = [{ file: PLACE_WORKER, mode: constants.R_OK, what: 'the script of the thread that puts files in place' }];
  const tokened = config.jobs.filter((job) => job.token !== undefined).map((job) => job.name);
  if (tokened.length > 0) needed.push({ file: ASKPASS_SCRIPT, mode: constants.X_OK, what: `git's askpass helper, which hands the HTTPS token of job ${tokened.slice(0, 3).join(', ')}${tokened.length > 3 ? ', …' : ''} to git` });
  const missing: string[] = [];
  for (const { file, mode, what } of needed) {
    const problem = await access(file, mode).then(() => undefined, (error: NodeJS.ErrnoException) => error.code ?? String(error));
    if (problem !== undefined) missing.push(`Expected ${what} at ${file} (${problem}): ${LAYOUT}`);
  }
  return missing;
}
