import * as z from 'zod';
import { PROVIDER_NAMES } from '../config/types.js';
import { RUN_STATUSES, type RunRecord } from '../jobs/run-record.js';

const text = z.string();
const optionalText = z.string().optional();

/**
 * What a run record read back from disk must look like before the daemon trusts it. The
 * paths in it are not trusted at all: the store derives them from the job and the run id.
 */
const runRecordSchema = z.object({
  id: text,
  job: text,
  status: z.enum(RUN_STATUSES),
  trigger: z.object({
    type: z.enum(['webhook', 'manual', 'recovery']),
    provider: z.enum(PROVIDER_NAMES),
    delivery: text,
    pusher: text,
    retryOf: optionalText,
    requestedBy: optionalText,
  }),
  repo: text,
  ref: text,
  branch: optionalText,
  tag: optionalText,
  // Empty for an event run of a generic job without a remote.
  sha: z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64}|)$/),
  before: text,
  source: optionalText,
  exact: z.boolean().optional(),
  deployedSha: optionalText,
  queuedAt: z.iso.datetime(),
  startedAt: optionalText,
  finishedAt: optionalText,
  durationMs: z.number().optional(),
  exitCode: z.number().nullable().optional(),
  signal: z.string().nullable().optional(),
  reason: optionalText,
  supersededBy: optionalText,
  joined: z.number().int().positive().optional(),
  retriedBy: optionalText,
  pgid: z.number().int().positive().optional(),
  pgidStartTime: optionalText,
  pgidBootId: optionalText,
  commandGroup: z.literal(true).optional(),
  housekeeping: z.literal(true).optional(),
  forwards: z
    .array(
      z.object({
        url: text,
        status: z.enum(['pending', 'delivered', 'failed']),
        attempts: z.number().int().nonnegative(),
        lastStatus: z.number().int().optional(),
        lastError: optionalText,
        finishedAt: optionalText,
      }),
    )
    .optional(),
});

/** The record, if `value` is one, with its paths replaced by the ones the store derives. */
export function parseRunRecord(value: unknown, paths: { logPath: string; eventFile: string }): RunRecord | undefined {
  const parsed = runRecordSchema.safeParse(value);
  if (!parsed.success) return undefined;
  const record = { ...parsed.data, ...paths };
  // exactOptionalPropertyTypes: drop keys zod set to undefined.
  return Object.fromEntries(Object.entries(record).filter((entry) => entry[1] !== undefined)) as unknown as RunRecord;
}
