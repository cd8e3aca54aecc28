import { stat } from 'node:fs/promises';
import type { ConfigIssue } from '../errors.js';
import { formatPath } from './format-issues.js';
import { resolveConfigPath } from './resolve-paths.js';
import type { EventSpec, EventValue } from './types.js';

/** The event keys of a generic job as written; the schema has checked their shapes. */
export interface EventKeys {
  source?: string | undefined;
  remote?: string | undefined;
  workdir?: string | undefined;
  when?: Record<string, EventValue | EventValue[]> | undefined;
  fields?: Record<string, string> | undefined;
}

export interface ResolvedEventJob {
  event: EventSpec;
  /** Without a remote: the absolute folder the command runs in, which exists. */
  folder?: string;
}

/**
 * A generic job's `source`, `when` and `fields`, and, without a remote, its `workdir`: absolute
 * or relative to the config file, and an existing folder (git never touches it).
 */
export async function resolveEventJob(raw: EventKeys, baseDir: string, at: string, issues: ConfigIssue[]): Promise<ResolvedEventJob> {
  const event: EventSpec = {
    source: raw.source ?? '',
    when: Object.entries(raw.when ?? {}).map(([path, value]) => ({ path, values: [value].flat() })),
    fields: { ...raw.fields },
  };
  if (raw.remote !== undefined || raw.workdir === undefined) return { event };
  const folder = resolveConfigPath(baseDir, raw.workdir);
  const problem = await stat(folder).then(
    (info) => (info.isDirectory() ? undefined : 'a file'),
    (error: NodeJS.ErrnoException) => error.code ?? String(error),
  );
  if (problem !== undefined) issues.push({ path: formatPath(['workdir'], at), message: `expected an existing folder to run the command in at ${folder}, got ${problem}` });
  return { event, folder };
}
