import { sep } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import type { JobConfig } from './types.js';

const inside = (path: string, folder: string) => path === folder || path.startsWith(folder.endsWith(sep) ? folder : `${folder}${sep}`);

/**
 * Each job needs a checkout of its own: another job's `git clean -ffdx` would wipe a checkout
 * nested in its own, and a checkout holding the state or log folder would wipe those.
 */
export function checkoutClashes(jobs: readonly JobConfig[], daemonFolders: readonly string[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  // Sorted by path, a checkout nested in another comes right after it (or after its other
  // nested ones), so one pass with a stack finds every clash without comparing all pairs.
  const sorted = [...jobs].sort((a, b) => (a.checkout < b.checkout ? -1 : a.checkout > b.checkout ? 1 : 0));
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
  for (const job of jobs) {
    const path = `job "${job.name}".checkout`;
    for (const folder of daemonFolders) {
      if (inside(folder, job.checkout)) issues.push({ path, message: `expected a checkout that does not hold deployhook's own folder ${folder}` });
    }
  }
  return issues;
}

