import { join, sep } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import type { JobConfig } from './types.js';

/** Whether `path` is `folder` or a path in it (both absolute and normalized). */
export const inside = (path: string, folder: string) => path === folder || path.startsWith(folder.endsWith(sep) ? folder : `${folder}${sep}`);

/**
 * Each job needs a checkout of its own: another job's `git clean -ffdx` would wipe a checkout
 * nested in its own, and a checkout holding the state or log folder would wipe those; one
 * inside a folder deployhook fills (the state folder's runs, journal and deliveries, its
 * checkouts/ itself, the log folder) would clash with what it writes there.
 */
export function checkoutClashes(jobs: readonly JobConfig[], folders: { state: string; log: string }): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  // Sorted by path, a checkout nested in another comes right after it (or after its other
  // nested ones), so one pass with a stack finds every clash without comparing all pairs.
  // Compared folder by folder ("/srv/b" and "/srv/b/c" before "/srv/b-c", which a plain text
  // sort puts between them: "-" sorts before "/").
  const key = (job: JobConfig) => job.checkout.split(sep).join('\u0000');
  const sorted = [...jobs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const open: JobConfig[] = [];
  for (const job of sorted) {
    while (open.length > 0 && !inside(job.checkout, (open.at(-1) as JobConfig).checkout)) open.pop();
    const outer = open.at(-1);
    if (outer && outer.name !== job.name) {
      const path = `job "${job.name}".checkout`;
      if (job.checkout === outer.checkout) issues.push({ path, message: `expected a checkout of its own, but ${job.checkout} is also the checkout of job "${outer.name}"` });
      else issues.push({ path, message: `expected a checkout of its own, but ${job.checkout} and the checkout of job "${outer.name}" (${outer.checkout}) are nested` });
    }
    open.push(job);
  }
  // The folders deployhook fills (git would not clone into them, and a clean would wipe what
  // they hold); the state folder's checkouts/ holds the checkouts, each in a folder of its own.
  const checkouts = join(folders.state, 'checkouts');
  const filled = [join(folders.state, 'runs'), join(folders.state, 'journal'), join(folders.state, 'deliveries'), checkouts, folders.log];
  for (const job of jobs) {
    const path = `job "${job.name}".checkout`;
    for (const folder of [folders.state, folders.log]) {
      if (inside(folder, job.checkout)) issues.push({ path, message: `expected a checkout that does not hold deployhook's own folder ${folder}` });
    }
    if (inside(job.checkout, checkouts) && job.checkout !== checkouts) continue;
    const within = filled.find((folder) => inside(job.checkout, folder));
    if (within !== undefined) issues.push({ path, message: `expected a checkout outside ${within}, which deployhook fills itself` });
  }
  return issues;
}

