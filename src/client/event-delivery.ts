import { randomUUID } from 'node:crypto';
import type { JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { signatureHeaders } from '../providers/standard-webhooks.js';
import type { SignedDelivery } from './push-payload.js';

/**
 * A generic event for `job` as a script would send it: the JSON in `data` (checked to be
 * JSON, sent as written), signed Standard Webhooks style with the job's first secret.
 */
export function buildEventDelivery(job: JobConfig, data: string, now = new Date()): SignedDelivery {
  try {
    JSON.parse(data);
  } catch (cause) {
    throw new DeployhookError('INVALID_EVENT_DATA', `Expected --data to be JSON such as '{"status": "firing"}', got ${JSON.stringify(data.slice(0, 60))}`, { cause });
  }
  const id = `msg_${randomUUID().replaceAll('-', '')}`;
  return {
    body: data,
    headers: { 'content-type': 'application/json', 'user-agent': 'deployhook-send', ...signatureHeaders(job.secrets[0] ?? '', id, data, now) },
  };
}
