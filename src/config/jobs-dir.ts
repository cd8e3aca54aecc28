import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { toConfigIssues } from './format-issues.js';
import { jobsFileSchema } from './schema.js';

/** Entries of a file in jobs_dir: `jobs: [...]`, or one job mapping. */
export function jobsOfFile(document: unknown, where: string, issues: ConfigIssue[]): unknown[] {
  if (document !== null && typeof document === 'object' && !Array.isArray(document) && 'jobs' in document) {
    const parsed = jobsFileSchema.safeParse(document, { reportInput: true });
    if (!parsed.success) {
      issues.push(...toConfigIssues(parsed.error.issues, where, () => ['jobs']));
      return [];
    }
    return parsed.data.jobs;
  }
  return [document];
}

export async function filesOfJobsDir(dir: string, issues: ConfigIssue[]): Promise<string[]> {
  try {
    const names = await readdir(dir);
    return names.filter((name) => /\.ya?ml$/.test(name) && !name.startsWith('.')).sort().map((name) => join(dir, name));
  } catch (error) {
    issues.push({ path: 'jobs_dir', message: `expected a readable folder at ${dir}, got ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
    return [];
  }
}

