import type * as z from 'zod';
import type { ConfigIssue } from '../errors.js';

/**
 * `['jobs', 1, 'branches', 0]` -> `jobs[1].branches[0]`. A prefix names where the value
 * sits: `jobs[3]`, or `web.yml: ` for a job file in jobs_dir.
 */
export function formatPath(path: readonly PropertyKey[], prefix = ''): string {
  let out = prefix;
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' || out.endsWith(' ') ? String(part) : `.${String(part)}`;
  }
  return out;
}

function describeType(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `a ${typeof value}`;
}

/**
 * Turns zod issues into `path: message` lines in deployhook's words. Values are
 * described by type, never echoed, except where the schema's own message quotes them.
 */
export function toConfigIssues(issues: readonly z.core.$ZodIssue[], prefix: string, allowedKeys: (path: readonly PropertyKey[]) => readonly string[] | undefined): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(issue.path);
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key], prefix), message: `unknown key${allowed ? ` (expected one of: ${allowed.join(', ')})` : ''}` });
      }
      continue;
    }
    const path = formatPath(issue.path, prefix);
    if (issue.code === 'invalid_type') {
      const input = (issue as { input?: unknown }).input;
      const message = issue.message.startsWith('Invalid input') ? `expected ${issue.expected}` : issue.message;
      out.push({ path, message: input === undefined ? `${message}, but it is missing` : `${message}, got ${describeType(input)}` });
      continue;
    }
    out.push({ path, message: issue.message });
  }
  return out;
}
