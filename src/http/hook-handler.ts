import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { JobConfig, ProviderName } from '../config/types.js';
import { planEventRuns, type PlannedRun } from '../jobs/event-runs.js';
import { credentialKey, type JobIndex } from '../jobs/job-index.js';
import type { RunQueue, RunRequest } from '../jobs/run-queue.js';
import type { RunRecord } from '../jobs/run-record.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { TEST_DELIVERY } from '../providers/push-event.js';
import type { ProviderAdapter, PushEvent } from '../providers/types.js';
import type { DeliveryLog } from '../store/delivery-log.js';
import { BodyBudget, readBody } from './read-body.js';
import { sendJson } from './respond.js';
import type { SourceFilter } from './source-filter.js';
import type { DeliveryOutcome } from '../metrics/metrics.js';
import type { RelayedDelivery } from '../forward/forwarder.js';
import type { LineLimiter } from '../log/line-limit.js';

export interface HookHandlerOptions {
  providers: ProviderRegistry;
  /** The current jobs; a function so that a reload takes effect for the next delivery. */
  jobs: () => JobIndex;
  queue: RunQueue;
  deliveries: DeliveryLog;
  logger: Logger;
  maxBodyBytes: () => number;
  /** True once shutdown has begun: deliveries get 503 and should be retried. */
  draining: () => boolean;
  /** `allow_from` and `trust_proxy`. */
  sources: () => SourceFilter;
  /** A head commit message containing this queues nothing. */
  skipMarker: () => string;
  /** The daemon's environment: `git ls-remote` reads the branch tip an event deploys with it. */
  env: Readonly<Record<string, string | undefined>>;
  /** Told the outcome of every delivery (metrics). */
  onDelivery?: (provider: string, outcome: DeliveryOutcome) => void;
  /**
   * Fan-out: given every verified delivery that is not a redelivery, with the runs it queued
   * or joined; `joined` holds the runs it joined, whose records do not list its relays.
   */
  relay?: (delivery: RelayedDelivery, runs: readonly RunRecord[], joined?: ReadonlySet<RunRecord>) => void;
  /**
   * Whether a delivery of this provider that queues nothing is relayed (the provider has
   * `forward` destinations): such a delivery is then remembered, so that a replay of it is
   * not relayed again.
   */
  relaysUnqueued?: (provider: ProviderName) => boolean;
  /**
   * Caps the log lines of deliveries that deploy nothing (rejected, ignored) or only join runs
   * already queued (counted as `joined`); without it, every delivery is logged. Deliveries that
   * queue a run, duplicates and failures always are.
   */
  quietLines?: LineLimiter;
}

/** The decisions whose log lines a flood may thin out: nothing was queued or recorded for them. */
const QUIET_DECISIONS: ReadonlySet<DeliveryOutcome> = new Set(['rejected', 'ignored']);

/**
 * Up to this many different secrets among a provider's jobs (however many jobs share them), a
 * delivery is verified against all of them before its body is parsed: parsing what nobody
 * signed is the costliest work an unauthenticated client can ask for (a deeply nested or
 * object-packed body of `max_body_bytes` takes seconds). Beyond it, the body is parsed first
 * to find the repository's jobs, so that matching never checks every secret.
 */
const VERIFY_BEFORE_PARSE_MAX_SECRETS = 16;

/**
 * The request bodies held in memory at once, all unverified while they are read: four of the
 * largest allowed, and never less than 64 MiB, so that a small `max_body_bytes` does not turn
 * ordinary concurrent pushes away.
 */
export function bodyBudgetBytes(maxBodyBytes: number): number {
  return Math.max(4 * maxBodyBytes, 64 * 1024 * 1024);
}

/** Deliberately the same for every verification failure: it must not help guess a secret. */
const UNAUTHORIZED = { error: 'signature verification failed' };

// A byte order mark is kept, and so refused by JSON.parse: stripped here, it would stay in the
// payload file the command reads (what is stored is the body as received), whose JSON would not parse.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The JSON a delivery carries: the body itself, or for a form-encoded delivery its
 * `payload` field. Strict: invalid UTF-8 is refused rather than patched, a byte order mark too.
 */
function payloadText(body: Buffer, form: boolean): string | undefined {
  try {
    const text = UTF8.decode(body);
    return form ? (new URLSearchParams(text).get('payload') ?? undefined) : text;
  } catch {
    return undefined;
  }
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * A job no delivery verifies for, with a secret and a signing token made at random: checked
 * instead when no job is configured for the repository or source a delivery names, so that
 * the 401 takes as long as for one that is (one check over the body) and its timing does not
 * tell which repositories and sources are configured.
 */
const DECOY = (() => {
  const key = randomBytes(32).toString('base64');
  return { secrets: [key], signingTokens: [`whsec_${key}`] } as unknown as JobConfig;
})();

/**
 * The candidate jobs the delivery verifies against (each with its own secrets). A check
 * depends only on a job's secrets and signing tokens, so jobs that share them (one secret
 * for a whole organisation) cost one HMAC over the body, not one each.
 */
function verifiedJobs(adapter: ProviderAdapter, body: Buffer, credential: unknown, candidates: readonly JobConfig[]): JobConfig[] {
  const checked = new Map<string, boolean>();
  return candidates.filter((job) => {
    const key = credentialKey(job);
    let ok = checked.get(key);
    if (ok === undefined) checked.set(key, (ok = adapter.verify(body, credential, job)));
    return ok;
  });
}

function runRequest(push: PushEvent, event: Buffer): RunRequest {
  return {
    trigger: { type: 'webhook', provider: push.provider, delivery: push.deliveryId, pusher: push.pusher },
    repo: push.repo,
    ref: push.ref,
    ...(push.branch !== undefined ? { branch: push.branch } : {}),
    ...(push.tag !== undefined ? { tag: push.tag } : {}),
    sha: push.sha,
    before: push.before,
    event,
  };
}

/**
 * `POST /hooks/<provider>` (generic events: `/hooks/<provider>/<source>`): verify, decide,
 * record, reply. Never waits for a command: a push that a job accepts is answered 202 as soon
 * as its run is on disk (an event for a job with a remote first reads the branch tip).
 */
export function createHookHandler(options: HookHandlerOptions) {
  const bodies = new BodyBudget();
  return async function handleHook(req: IncomingMessage, res: ServerResponse, providerName: string, source?: string): Promise<void> {
    const adapter = options.providers.get(providerName);
    if (!adapter) return sendJson(res, 404, { error: `no provider named ${JSON.stringify(providerName)}` });
    if ((source !== undefined) !== (adapter.sourceInPath === true)) return sendJson(res, 404, { error: adapter.sourceInPath ? `expected /hooks/${adapter.name}/<source>` : `no such path: expected /hooks/${adapter.name}` });
    const deliveryId = adapter.deliveryId(req.headers) ?? randomUUID();
    // Made for the first line written: a delivery whose line a flood leaves out needs none.
    let deliveryLogger: Logger | undefined;
    const logger = (): Logger => (deliveryLogger ??= options.logger.child({ delivery: deliveryId, provider: adapter.name }));
    /** `quietAs`: the kind a flood may thin this line out as, besides QUIET_DECISIONS. */
    const reply = (status: number, body: Record<string, unknown>, fields: { decision: DeliveryOutcome } & Record<string, unknown>, headers?: Record<string, string>, quietAs?: string) => {
      const quiet = quietAs ?? (QUIET_DECISIONS.has(fields.decision) ? fields.decision : undefined);
      if (quiet === undefined || (options.quietLines?.allow(quiet) ?? true)) logger().info({ status, ...fields }, 'delivery');
      options.onDelivery?.(adapter.name, fields.decision);
      sendJson(res, status, { delivery: deliveryId, ...body }, headers);
    };

    if (req.method !== 'POST') return reply(405, { error: 'expected POST' }, { decision: 'rejected', reason: `method ${req.method}` }, { allow: 'POST' });
    if (!options.sources().allows(adapter.name, req)) {
      return reply(403, { error: 'deliveries are not accepted from this address' }, { decision: 'rejected', reason: 'source not in allow_from', client: options.sources().clientAddress(req) }, { connection: 'close' });
    }
    if (options.draining()) return reply(503, { error: 'deployhook is shutting down; retry shortly' }, { decision: 'rejected', reason: 'shutting down' }, { 'retry-after': '10', connection: 'close' });
    const credential = adapter.readCredential(req.headers);
    if (!credential.ok) return reply(401, UNAUTHORIZED, { decision: 'rejected', reason: credential.reason }, { connection: 'close' });

    const type = req.headers['content-type'] ?? '';
    const form = adapter.formEncoded && /^application\/x-www-form-urlencoded\s*(;|$)/i.test(type);
    if (!form && !/^application\/json\s*(;|$)/i.test(type)) {
      const reason = `expected Content-Type application/json${adapter.formEncoded ? ' or application/x-www-form-urlencoded' : ''}: set the content type to application/json in the webhook settings`;
      return reply(415, { error: reason }, { decision: 'rejected', reason: `content type ${JSON.stringify(type.slice(0, 100))}` }, { connection: 'close' });
    }
    const maxBodyBytes = options.maxBodyBytes();
    const read = await readBody(req, { limit: maxBodyBytes, budget: { pool: bodies, bytes: bodyBudgetBytes(maxBodyBytes) } });
    if (!read.ok) return reply(read.status, { error: read.reason }, { decision: 'rejected', reason: read.reason }, read.status === 503 ? { 'retry-after': '5' } : { connection: 'close' });
    const text = payloadText(read.body, form);
    const malformed = () => {
      const error = form ? 'expected a form with a JSON `payload` field, in UTF-8' : 'expected a JSON body in UTF-8';
      return reply(400, { error }, { decision: 'rejected', reason: 'malformed JSON or UTF-8' });
    };
    if (text === undefined) return malformed();
    const index = options.jobs();
    const signed = adapter.signedBytes ? adapter.signedBytes(read.body, text, form) : read.body;
    // Verified before parsing where the secrets to try are known without the payload: a generic
    // event's source names its jobs, and a provider whose jobs have few secrets is tried whole.
    const early = source !== undefined ? index.candidates(adapter.name, source) : index.credentialsOf(adapter.name);
    let verifiedEarly: JobConfig[] | undefined;
    let verifiedKeys: ReadonlySet<string> | undefined;
    if (source !== undefined || early.length <= VERIFY_BEFORE_PARSE_MAX_SECRETS) {
      if (early.length === 0) {
        verifiedJobs(adapter, signed, credential.credential, [DECOY]);
        return reply(401, UNAUTHORIZED, { decision: 'rejected', reason: source !== undefined ? 'no job is configured for this source' : `no job is configured for provider ${adapter.name}` });
      }
      verifiedEarly = verifiedJobs(adapter, signed, credential.credential, early);
      if (verifiedEarly.length === 0) return reply(401, UNAUTHORIZED, { decision: 'rejected', reason: `signature matches no job secret of ${source !== undefined ? 'this source' : `provider ${adapter.name}`}` });
      verifiedKeys = new Set(verifiedEarly.map(credentialKey));
    }
    const payload = parseJson(text);
    if (payload === undefined) return malformed();
    // What the command reads and what fan-out relays: the verified JSON, however it was encoded.
    const json = form ? Buffer.from(text, 'utf8') : read.body;
    const relay = (runs: readonly RunRecord[], joined?: ReadonlySet<RunRecord>) => options.relay?.({ adapter, body: json, headers: req.headers, deliveryId }, runs, joined);
    // The key a delivery is remembered by. A generic source's senders name their own ids
    // (Standard Webhooks: unique per sender), so there it also names the jobs the signature
    // verified for: the sender's credential.
    const deliveryKey = (verifiedFor: readonly JobConfig[]) => {
      const key = adapter.dedupKey(req.headers, source);
      return key !== undefined && source !== undefined ? `${key}:${verifiedFor.map((job) => job.name).sort().join(',')}` : key;
    };
    // A delivery that queues nothing (a ping, a branch no job wants) is answered 200 and relayed
    // once: re-signed with a fresh timestamp, a replayed copy would otherwise pass each
    // destination's replay window. As after a 202, relaying starts once the answer is written.
    const ignore = async (verifiedFor: readonly JobConfig[], body: Record<string, unknown>, fields: { decision: DeliveryOutcome } & Record<string, unknown>) => {
      const relaying = await rememberRelay(verifiedFor);
      reply(200, body, fields);
      if (relaying) relay([]);
    };
    const rememberRelay = async (verifiedFor: readonly JobConfig[]): Promise<boolean> => {
      if (options.relaysUnqueued?.(adapter.name) !== true) return false;
      const key = deliveryKey(verifiedFor);
      // A key of its own: the delivery stays new for the queue, should a reload add a job that wants it.
      const claim = key === undefined ? undefined : options.deliveries.claim(`relayed:${key}`);
      if (claim?.duplicate) return false;
      await claim?.commit([]).catch((error: unknown) => logger().error({ err: error }, 'could not remember the delivery for dedup'));
      return true;
    };
    const repo = source ?? adapter.repositoryOf(payload);
    const probe = adapter.isProbe?.(req.headers, payload) === true;
    if (probe || repo === undefined) {
      // A test delivery, or an event that names no repository (an organisation's ping, GitLab's
      // member events): verified where every secret of the provider was tried before parsing.
      // With more secrets than that, nothing says which to try, and trying them all over a body
      // nobody signed would let anyone hold the daemon's thread for as long: 401.
      if (verifiedEarly === undefined) {
        verifiedJobs(adapter, signed, credential.credential, [DECOY]);
        return reply(401, UNAUTHORIZED, { decision: 'rejected', reason: `a ${probe ? 'test delivery' : 'delivery that names no repository'}, and the provider's jobs have more than ${VERIFY_BEFORE_PARSE_MAX_SECRETS} different secrets to try` });
      }
      if (probe) return ignore(verifiedEarly, { runs: [], reason: TEST_DELIVERY }, { decision: 'ignored', reason: 'test delivery' });
      // An event deployhook does not deploy is answered as for any repository; a push must name its own.
      const event = adapter.interpret(req.headers, payload, deliveryId, source);
      if (event.kind === 'ignored') return ignore(verifiedEarly, { runs: [], reason: event.reason }, { decision: 'ignored', reason: event.reason });
      return reply(400, { error: 'expected the payload to name its repository' }, { decision: 'rejected', reason: 'no repository in payload' });
    }

    const candidates = index.candidates(adapter.name, repo);
    if (candidates.length === 0) {
      // Signed with a secret of the provider's jobs: a hook of an organisation or group, which
      // also covers repositories without a job. Answered 200, not as a failure: hosts turn a
      // hook that keeps failing off (GitLab, for a while, after four), and with it the pushes
      // jobs want. Where the secrets were not all tried before parsing, those of the jobs of the
      // repository's owner are (the organisation's or group's hook is signed with one of them).
      const kin = verifiedEarly === undefined ? index.credentialsOfOwner(adapter.name, repo) : [];
      const verifiedKin = verifiedEarly ?? (kin.length > 0 && kin.length <= VERIFY_BEFORE_PARSE_MAX_SECRETS ? verifiedJobs(adapter, signed, credential.credential, kin) : []);
      if (verifiedKin.length > 0) {
        const reason = `no job is configured for repository ${JSON.stringify(repo.slice(0, 200))}`;
        return ignore(verifiedKin, { runs: [], reason }, { decision: 'ignored', repo: repo.slice(0, 200), reason: 'no job is configured for this repository' });
      }
      // Not verified: logged cut short, like any other text nobody signed; where nothing was
      // checked yet, checked against a decoy, so that the 401 takes as long as for a repository with jobs.
      if (verifiedEarly === undefined && (kin.length === 0 || kin.length > VERIFY_BEFORE_PARSE_MAX_SECRETS)) verifiedJobs(adapter, signed, credential.credential, [DECOY]);
      return reply(401, UNAUTHORIZED, { decision: 'rejected', repo: repo.slice(0, 200), reason: 'no job is configured for this repository' });
    }
    const verified = verifiedKeys !== undefined ? candidates.filter((job) => verifiedKeys.has(credentialKey(job))) : verifiedJobs(adapter, signed, credential.credential, candidates);
    if (verified.length === 0) return reply(401, UNAUTHORIZED, { decision: 'rejected', repo: repo.slice(0, 200), reason: 'signature matches no job secret of this repository' });

    const event = adapter.interpret(req.headers, payload, deliveryId, source);
    if (event.kind === 'invalid') return reply(400, { error: event.reason }, { decision: 'rejected', repo, reason: event.reason });
    if (event.kind === 'ignored') {
      return ignore(verified, { runs: [], reason: event.reason }, { decision: 'ignored', repo, reason: event.reason });
    }

    const marker = options.skipMarker();
    const wanted: PlannedRun[] = [];
    const reasons = event.kind === 'push' ? [...event.ignored] : [];
    if (event.kind === 'event') wanted.push(...planEventRuns(verified, event.event, reasons, options.env));
    for (const push of event.kind === 'push' ? event.pushes : []) {
      const wanting = index.wanting(verified, push);
      if (wanting.length === 0) reasons.push(push.branch !== undefined ? `no job deploys branch ${JSON.stringify(push.branch)} of ${repo}` : `no job deploys tag ${JSON.stringify(push.tag ?? '')} of ${repo}`);
      else if (push.message !== undefined && push.message.includes(marker)) reasons.push(`the head commit message contains ${JSON.stringify(marker)}: nothing queued`);
      else wanted.push(...wanting.map((job) => ({ job, request: async (body: Buffer) => runRequest(push, body) })));
    }
    const refs = event.kind === 'push' ? event.pushes.map((push) => push.ref).join(' ') : `event from ${event.event.source}`;
    if (wanted.length === 0) {
      const reason = reasons.join('; ');
      return ignore(verified, { runs: [], reason }, { decision: 'ignored', repo, ref: refs, reason });
    }
    const dedupKey = deliveryKey(verified);
    const claim = dedupKey === undefined ? undefined : options.deliveries.claim(dedupKey);
    // A copy still being recorded may yet fail and be released: acknowledging this one would lose the push then.
    if (claim?.duplicate && claim.inFlight) return reply(503, { error: 'this delivery is still being recorded; retry shortly' }, { decision: 'rejected', repo, ref: refs, reason: 'the same delivery is being recorded; the sender should retry' }, { 'retry-after': '5' });
    if (claim?.duplicate) return reply(200, { runs: [], duplicate: true, reason: 'this delivery was already received; nothing new was queued' }, { decision: 'duplicate', repo, ref: refs });
    let runs: RunRecord[];
    // Waiting runs this delivery joined (a push of the commit they are for), rather than queued.
    const joined = new Set<RunRecord>();
    try {
      // Every request first (an event reads its branch tip from the remote), then the records.
      const requests = await Promise.all(wanted.map(async ({ job, request }) => ({ job, request: await request(json) })));
      runs = await Promise.all(
        requests.map(async ({ job, request }) => {
          const admitted = await options.queue.enqueueOrJoin(job, request);
          if (admitted.joined) joined.add(admitted.run);
          return admitted.run;
        }),
      );
    } catch (error) {
      claim?.release();
      logger().error({ err: error }, 'could not record the delivery');
      return reply(503, { error: 'the delivery could not be recorded; retry later' }, { decision: 'failed', repo, ref: refs }, { 'retry-after': '30' });
    }
    // The runs are on disk: the delivery is acknowledged even if remembering it for dedup fails.
    await claim?.commit(runs.map((run) => run.id)).catch((error: unknown) => logger().error({ err: error }, 'could not remember the delivery for dedup'));
    for (const run of joined) run.joined = (run.joined ?? 0) + 1;
    const listed = runs.map((run) => ({ id: run.id, job: run.job, ...(joined.has(run) ? { joined: true } : {}) }));
    const shas = [...new Set(runs.map((run) => run.sha))].join(' ');
    // A delivery that only joined runs already queued adds no run: a flood of one commit may thin its lines out.
    const onlyJoined = runs.every((run) => joined.has(run));
    reply(202, { runs: listed, ...(reasons.length > 0 ? { ignored: reasons } : {}) }, { decision: 'queued', repo, ref: refs, sha: shas, runs: listed }, undefined, onlyJoined ? 'joined' : undefined);
    // Started once the 202 is written: re-signing and sending to each destination never hold it up.
    relay(runs, joined);
  };
}
