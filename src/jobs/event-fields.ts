import { readFile } from 'node:fs/promises';
import type { JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { valueAt } from './event-match.js';
import type { RunRecord } from './run-record.js';

/** The most a field's value may hold, in UTF-8 bytes; longer values are cut. */
export const MAX_FIELD_BYTES = 32 * 1024;

/**
 * A payload value as environment text: strings as they are, numbers and booleans as text,
 * objects and lists as JSON, missing or null as empty; without NUL (which an environment
 * cannot hold) and cut to `maxBytes`.
 */
export function fieldText(value: unknown, maxBytes = MAX_FIELD_BYTES): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : (JSON.stringify(value) ?? '');
  // eslint-disable-next-line no-control-regex -- NUL cannot be in an environment variable
  const clean = text.replace(/\u0000/g, '');
  if (Buffer.byteLength(clean) <= maxBytes) return clean;
  // Cut on a character boundary: a partial UTF-8 sequence at the end is dropped.
  return Buffer.from(clean).subarray(0, maxBytes).toString('utf8').replace(/\uFFFD$/, '');
}

/**
 * Where a field's value goes: `DEPLOYHOOK_FIELD_<name>`. Payload data under a name of the
 * operator's choosing could reach a name some program reads as code or options (LD_PRELOAD,
 * NODE_OPTIONS, ERL_AFLAGS, RESTIC_PASSWORD_COMMAND, ...), and no list of such names is ever
 * complete; under deployhook's own prefix it can only ever be data.
 */
export const FIELD_PREFIX = 'DEPLOYHOOK_FIELD_';

/** The job's `fields` as environment variables, each from its path in the payload (missing: empty). */
export function fieldValues(fields: Readonly<Record<string, string>>, payload: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, path] of Object.entries(fields)) env[`${FIELD_PREFIX}${name}`] = fieldText(valueAt(payload, path));
  return env;
}

/**
 * The field variables of a run of a generic job, read from its verified payload. Every field
 * is set; a run that no event started (an operator's deploy) gets them all empty.
 */
export async function eventFieldsOf(job: JobConfig, run: RunRecord): Promise<Record<string, string>> {
  const fields = job.event?.fields ?? {};
  if (Object.keys(fields).length === 0) return {};
  let payload: unknown;
  if (run.source !== undefined) {
    try {
      payload = JSON.parse(await readFile(run.eventFile, 'utf8'));
    } catch (cause) {
      throw new DeployhookError('EVENT_UNREADABLE', `Expected the event of run ${run.id} at ${run.eventFile} to be readable JSON, to set the job's fields from it`, { cause });
    }
  }
  return fieldValues(fields, payload);
}
