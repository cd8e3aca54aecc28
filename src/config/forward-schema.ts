import * as z from 'zod';
import { parseDuration } from './duration.js';
import { PROVIDER_NAMES } from './types.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const duration = (what: string) =>
  z.string({ error: `expected ${what} such as \`10s\`` }).refine((text) => (parseDuration(text) ?? 0) > 0, {
    error: (issue) => `expected ${what} longer than zero such as \`10s\`, got ${JSON.stringify(issue.input)}`,
  });

function httpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hash === '';
  } catch {
    return false;
  }
}

/**
 * One fan-out destination: every verified delivery is relayed to `url`, re-signed with
 * this destination's own secret, and retried with exponential backoff.
 */
export const forwardSchema = z
  .strictObject({
    url: z.string({ error: 'expected an http(s) URL' }).refine(httpUrl, { error: 'expected an http(s) URL without a #fragment, such as "https://deploy-2.example.com/hooks/github" (the value is not shown: it may hold a password)' }),
    secret_env: z.string({ error: 'expected an environment variable name' }).regex(ENV_NAME, { error: 'expected an environment variable name such as `FORWARD_SECRET`' }).optional(),
    secret_file: z.string({ error: 'expected a path' }).min(1, { error: 'expected a path, got an empty string' }).optional(),
    /** Attempts in all, the first included. */
    attempts: z.number({ error: 'expected a whole number from 1 to 20' }).int({ error: 'expected a whole number from 1 to 20' }).min(1).max(20).default(6),
    /** The wait before the second attempt; it doubles for each further one, up to 5 minutes. */
    backoff: duration('a duration').default('2s'),
    /** How long one attempt may take, connection included. */
    timeout: duration('a timeout').default('10s'),
  })
  .superRefine((target, ctx) => {
    if ((target.secret_env === undefined) === (target.secret_file === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['secret_env'], message: `expected exactly one of secret_env or secret_file (the destination's webhook secret), got ${target.secret_env === undefined ? 'neither' : 'both'}` });
    }
  });

export const forwardListSchema = z.array(forwardSchema, { error: 'expected a list of destinations such as [{url: "https://...", secret_env: "NAME"}]' });

/** Settings per provider: for now, where every verified delivery of that provider is relayed. */
export const providersSchema = z.partialRecord(
  z.enum(PROVIDER_NAMES, { error: `expected a provider name: ${PROVIDER_NAMES.join(', ')}` }),
  z.strictObject({ forward: forwardListSchema }),
);

export type RawForward = z.infer<typeof forwardSchema>;
