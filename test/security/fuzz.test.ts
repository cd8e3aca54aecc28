import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubPush, gitlabPush } from '../helpers/payloads.js';
import { sendRaw, type RawHeader, type RawRequest } from '../helpers/raw-http.js';
import { mulberry32 } from '../helpers/random.js';
import { allRunFiles } from '../helpers/runs.js';

const WEB_SECRET = 'fuzz-web-secret-0d1e2f3a4b5c6d7e';
const ROTATE_OLD = 'fuzz-rotate-old-9a8b7c6d5e4f3a2b';
const ROTATE_NEW = 'fuzz-rotate-new-1f2e3d4c5b6a7980';
const LAB_TOKEN = 'fuzz-lab-token-6e5d4c3b2a1f0e9d';
const GITHUB_SECRETS = [WEB_SECRET, ROTATE_OLD, ROTATE_NEW];
const SECRETS = [...GITHUB_SECRETS, LAB_TOKEN];
const MAX_BODY = 65_536;

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 3_000);
const CONCURRENCY = 8;

class Random {
  readonly #next: () => number;

  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }

  chance(p: number): boolean {
    return this.#next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }

  hex(n: number): string {
    return Array.from({ length: n }, () => '0123456789abcdef'[this.int(16)]).join('');
  }
}

function signature(secret: string, body: Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

interface FuzzRequest extends RawRequest {
  body: Buffer;
  headers: RawHeader[];
  /** The mutations applied, for the summary and for replaying a failure. */
  mutations: string[];
}

interface Context {
  dir: string;
  sha: string;
}

/** Values that have broken parsers, path handling or shells somewhere. */
function hostileValues(ctx: Context): unknown[] {
  return [
    null,
    true,
    0,
    -1,
    1e308,
    '',
    'main',
    'refs/heads/main',
    'refs/heads/release/x',
    'refs/heads/a..b',
    'refs/tags/v1',
    'HEAD~1',
    ctx.sha,
    ctx.sha.toUpperCase(),
    '0'.repeat(40),
    `--upload-pack=touch ${join(ctx.dir, 'fuzz-pwned')}`,
    `$(touch\${IFS}${join(ctx.dir, 'fuzz-pwned')})`,
    `refs/heads/$(touch\${IFS}${join(ctx.dir, 'fuzz-pwned')})`,
    `\`touch\${IFS}${join(ctx.dir, 'fuzz-pwned')}\``,
    '../../etc/passwd',
    '/etc/passwd',
    'acme/web',
    'ACME/WEB',
    'acme/platform/lab',
    '__proto__',
    'constructor',
    '\u0000',
    '\ud800',
    'x'.repeat(2_000),
    [],
    {},
    [[[[[[[[[[[]]]]]]]]]]],
  ];
}

const CONTENT_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'text/plain', 'application/x-www-form-urlencoded', 'application/jsonp', 'application/json-patch+json', '', 'multipart/form-data; boundary=x', 'application/json\u00a0'];
const GITHUB_EVENTS = ['push', 'ping', 'issues', 'PUSH', 'push, push', '', 'create'];
const GITLAB_EVENTS = ['Push Hook', 'Tag Push Hook', 'Merge Request Hook', 'push', ''];
const PATHS = ['/hooks/github', '/hooks/gitlab', '/hooks/github/', '/hooks/bitbucket', '/hooks/constructor', '/hooks/GitHub', '/healthz', '/hooks/github?x=1'];
const METHODS = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];

/** Walks parsed JSON and returns a setter for one randomly chosen value inside it. */
function randomSlot(random: Random, root: unknown): ((value: unknown) => void) | undefined {
  const slots: Array<(value: unknown) => void> = [];
  const visit = (value: unknown, depth: number) => {
    if (depth > 6 || value === null || typeof value !== 'object') return;
    const container = value as Record<string, unknown>;
    for (const key of Object.keys(container)) {
      slots.push((next) => {
        container[key] = next;
      });
      visit(container[key], depth + 1);
    }
  };
  visit(root, 0);
  return slots.length === 0 ? undefined : random.pick(slots);
}

function replaceJson(request: FuzzRequest, change: (payload: Record<string, unknown>) => void): boolean {
  let payload: unknown;
  try {
    payload = JSON.parse(request.body.toString('utf8'));
  } catch {
    return false;
  }
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return false;
  change(payload as Record<string, unknown>);
  request.body = Buffer.from(JSON.stringify(payload));
  return true;
}

type Mutation = (random: Random, request: FuzzRequest, ctx: Context) => void;

const bodyMutations: Record<string, Mutation> = {
  flipBit(random, request) {
    if (request.body.length === 0) return;
    const at = random.int(request.body.length);
    request.body[at] = (request.body[at] ?? 0) ^ (1 << random.int(8));
  },
  setByte(random, request) {
    if (request.body.length === 0) return;
    request.body[random.int(request.body.length)] = random.int(256);
  },
  insertBytes(random, request) {
    const at = random.int(request.body.length + 1);
    request.body = Buffer.concat([request.body.subarray(0, at), random.bytes(1 + random.int(16)), request.body.subarray(at)]);
  },
  insertToken(random, request) {
    const at = random.int(request.body.length + 1);
    const token = random.pick(['{', '}', '[', ']', '"', '\\', ',', ':', 'null', '"__proto__":{"polluted":1},', '\u0000', '\ufeff', '\\u0000', '1e999', '"ref":"main",']);
    request.body = Buffer.concat([request.body.subarray(0, at), Buffer.from(token), request.body.subarray(at)]);
  },
  deleteRange(random, request) {
    const start = random.int(request.body.length + 1);
    request.body = Buffer.concat([request.body.subarray(0, start), request.body.subarray(start + 1 + random.int(64))]);
  },
  truncate(random, request) {
    request.body = request.body.subarray(0, random.int(request.body.length + 1));
  },
  duplicateSlice(random, request) {
    const start = random.int(request.body.length + 1);
    const slice = request.body.subarray(start, start + 1 + random.int(256));
    const at = random.int(request.body.length + 1);
    request.body = Buffer.concat([request.body.subarray(0, at), slice, request.body.subarray(at)]);
  },
  retype(random, request, ctx) {
    replaceJson(request, (payload) => randomSlot(random, payload)?.(random.pick(hostileValues(ctx))));
  },
  setField(random, request, ctx) {
    replaceJson(request, (payload) => {
      const field = random.pick(['ref', 'after', 'before', 'repository', 'project', 'pusher', 'deleted']);
      const value = random.pick(hostileValues(ctx));
      if ((field === 'repository' || field === 'project') && typeof payload[field] === 'object' && payload[field] !== null && random.chance(0.7)) {
        (payload[field] as Record<string, unknown>)[field === 'repository' ? 'full_name' : 'path_with_namespace'] = value;
      } else {
        payload[field] = value;
      }
    });
  },
  prototypeKeys(random, request) {
    const key = random.pick(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString']);
    const text = request.body.toString('latin1');
    const at = text.indexOf('{', random.int(Math.max(1, text.length)));
    if (at === -1) return;
    request.body = Buffer.concat([request.body.subarray(0, at + 1), Buffer.from(`"${key}":{"polluted":"yes","prototype":{"polluted":"yes"}},`), request.body.subarray(at + 1)]);
  },
  deepNesting(random, request) {
    const depth = 1_000 + random.int(20_000);
    request.body = Buffer.from(random.chance(0.5) ? `${'['.repeat(depth)}${']'.repeat(depth)}` : '['.repeat(depth));
  },
  otherJson(random, request) {
    request.body = Buffer.from(random.pick(['null', '[]', '42', '"x"', 'true', '{}', '', ' ', '{"repository":null}', '{"repository":{"full_name":"acme/web"}}']));
  },
  oversize(random, request) {
    request.body = Buffer.concat([request.body, Buffer.alloc(MAX_BODY + random.int(4_096), ' ')]);
  },
};

function headerIndex(random: Random, request: FuzzRequest): number | undefined {
  return request.headers.length === 0 ? undefined : random.int(request.headers.length);
}

function setHeader(request: FuzzRequest, name: string, value: string): void {
  request.headers = request.headers.filter(([key]) => key.toLowerCase() !== name.toLowerCase());
  request.headers.push([name, value]);
}

const headerMutations: Record<string, Mutation> = {
  dropHeader(random, request) {
    const at = headerIndex(random, request);
    if (at !== undefined) request.headers.splice(at, 1);
  },
  duplicateHeader(random, request) {
    const at = headerIndex(random, request);
    const header = at === undefined ? undefined : request.headers[at];
    if (header) request.headers.splice(random.int(request.headers.length + 1), 0, header);
  },
  swapValues(random, request) {
    // GitLab's token is the secret itself: moved into another header, the daemon would only
    // echo the client's own value back (as a delivery id, say), which reveals nothing.
    const swappable = request.headers.flatMap(([name], index) => (name.toLowerCase() === 'x-gitlab-token' ? [] : [index]));
    if (swappable.length < 2) return;
    const a = random.pick(swappable);
    const b = random.pick(swappable);
    const first = request.headers[a];
    const second = request.headers[b];
    if (!first || !second) return;
    request.headers[a] = [first[0], second[1]];
    request.headers[b] = [second[0], first[1]];
  },
  contentType(random, request) {
    setHeader(request, 'Content-Type', random.pick(CONTENT_TYPES));
  },
  randomSignature(random, request, ctx) {
    const value = random.pick([
      () => `sha256=${random.hex(64)}`,
      () => `sha256=${random.hex(random.int(130))}`,
      () => `sha1=${random.hex(40)}`,
      () => signature(random.pick(SECRETS), Buffer.from(`${ctx.sha}${random.hex(4)}`)),
      () => signature(LAB_TOKEN, request.body),
      () => signature(WEB_SECRET, request.body).toUpperCase(),
      () => random.bytes(1 + random.int(80)).toString('latin1'),
      () => '',
    ])();
    setHeader(request, 'X-Hub-Signature-256', value);
  },
  randomToken(random, request) {
    setHeader(request, 'X-Gitlab-Token', random.pick([LAB_TOKEN.slice(0, -1), `${LAB_TOKEN} `.slice(1), WEB_SECRET, '', random.hex(32), `${LAB_TOKEN}${random.hex(2)}`]));
  },
  randomEvent(random, request) {
    if (random.chance(0.5)) setHeader(request, 'X-GitHub-Event', random.pick(GITHUB_EVENTS));
    else setHeader(request, 'X-Gitlab-Event', random.pick(GITLAB_EVENTS));
  },
  padValue(random, request) {
    const at = headerIndex(random, request);
    const header = at === undefined ? undefined : request.headers[at];
    if (at !== undefined && header) request.headers[at] = [header[0], `${random.pick([' ', '\t', '  '])}${header[1]}${random.pick(['', ' ', '\t'])}`];
  },
  randomBytesValue(random, request) {
    const at = headerIndex(random, request);
    const header = at === undefined ? undefined : request.headers[at];
    if (at !== undefined && header) request.headers[at] = [header[0], random.bytes(1 + random.int(40)).toString('latin1')];
  },
  method(random, request) {
    request.method = random.pick(METHODS);
  },
  path(random, request) {
    request.path = random.pick(PATHS);
  },
};

/** GitHub's example push or GitLab's documented one, as the host sends it, correctly signed. */
function baseRequest(random: Random, ctx: Context, index: number): FuzzRequest {
  const delivery = `fuzz-${SEED}-${index}`;
  if (random.chance(0.6)) {
    const body = Buffer.from(JSON.stringify(githubPush({ repo: 'acme/web', ref: random.pick(['refs/heads/main', 'refs/heads/release/1', 'refs/heads/feature/x']), after: ctx.sha })));
    const headers: RawHeader[] = [
      ['Content-Type', 'application/json'],
      ['User-Agent', 'GitHub-Hookshot/fuzz'],
      ['X-GitHub-Event', 'push'],
      ['X-GitHub-Delivery', delivery],
      ['X-GitHub-Hook-ID', '42'],
      ['X-Hub-Signature-256', signature(random.pick(GITHUB_SECRETS), body)],
    ];
    return { method: 'POST', path: '/hooks/github', headers, body, mutations: ['github'] };
  }
  const body = Buffer.from(JSON.stringify(gitlabPush({ repo: 'acme/platform/lab', after: ctx.sha })));
  const headers: RawHeader[] = [
    ['Content-Type', 'application/json'],
    ['User-Agent', 'GitLab/17.0.0'],
    ['X-Gitlab-Event', 'Push Hook'],
    ['X-Gitlab-Event-UUID', delivery],
    ['X-Gitlab-Token', LAB_TOKEN],
  ];
  return { method: 'POST', path: '/hooks/gitlab', headers, body, mutations: ['gitlab'] };
}

/** A mutated request; in some iterations the mutated body is then signed correctly. */
function mutatedRequest(random: Random, ctx: Context, index: number): FuzzRequest {
  const request = baseRequest(random, ctx, index);
  const apply = (mutations: Record<string, Mutation>, count: number) => {
    const names = Object.keys(mutations);
    for (let i = 0; i < count; i += 1) {
      const name = random.pick(names);
      mutations[name]?.(random, request, ctx);
      request.mutations.push(name);
    }
  };
  apply(bodyMutations, random.int(4));
  apply(headerMutations, random.int(random.chance(0.2) ? 4 : 2));
  if (random.chance(0.3)) {
    const provider = request.path.includes('gitlab') ? 'gitlab' : 'github';
    if (provider === 'github') setHeader(request, 'X-Hub-Signature-256', signature(random.pick(GITHUB_SECRETS), request.body));
    else setHeader(request, 'X-Gitlab-Token', LAB_TOKEN);
    request.mutations.push('signedAfterMutation');
  }
  // A line break in a header value would forge further header lines: keep each mutation inside its header.
  request.headers = request.headers.map(([name, value]) => [name, value.replace(/[\r\n]/g, ' ')]);
  return request;
}

/**
 * Whether the request, as the daemon will parse it, carries exactly one credential that is
 * valid for its provider: the HMAC of the body with a configured GitHub secret, or the GitLab token.
 */
function correctlySigned(request: FuzzRequest): boolean {
  const provider = /^\/hooks\/(github|gitlab)\/?(?:\?.*)?$/.exec(request.path)?.[1];
  if (provider === undefined) return false;
  const header = provider === 'github' ? 'x-hub-signature-256' : 'x-gitlab-token';
  // HTTP strips spaces and tabs around a field value before the daemon sees it.
  const values = request.headers.filter(([name]) => name.toLowerCase() === header).map(([, value]) => value.replace(/^[ \t]+|[ \t]+$/g, ''));
  if (values.length !== 1) return false;
  const [value] = values;
  return provider === 'github' ? GITHUB_SECRETS.some((secret) => value === signature(secret, request.body)) : value === LAB_TOKEN;
}

async function inParallel<T>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) {
        const index = next;
        next += 1;
        await work(items[index] as T, index);
      }
    }),
  );
}

let ctx: Context;
let hook: TestDaemon;
let port: number;

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'deployhook-fuzz-'));
  const remote = await createRemote(join(dir, 'remotes'), 'web');
  const sha = await remote.commit({ 'README.md': 'fuzzing target\n' });
  ctx = { dir, sha };
  const marker = join(dir, 'ran.txt');
  const job = { remote: remote.bare, command: ['sh', '-c', 'echo ran >> "$1"', 'sh', marker] };
  hook = await startDaemon(
    dir,
    {
      max_body_bytes: MAX_BODY,
      // Nothing is pruned, so every run ever recorded can be checked against the replies.
      keep_runs: 1_000_000,
      headers_timeout: '2s',
      request_timeout: '5s',
      jobs: [
        { ...job, name: 'web', provider: 'github', repo: 'acme/web', branches: ['main', 'release/*'], secret_env: 'WEB_SECRET' },
        { ...job, name: 'web-rotating', provider: 'github', repo: 'acme/web', branches: ['main'], secret_env: ['ROTATE_OLD', 'ROTATE_NEW'] },
        { ...job, name: 'lab', provider: 'gitlab', repo: 'acme/platform/lab', branches: ['main'], secret_env: 'LAB_TOKEN' },
      ],
    },
    { WEB_SECRET, ROTATE_OLD, ROTATE_NEW, LAB_TOKEN },
  );
  port = Number(new URL(hook.url).port);
});

afterAll(async () => {
  await hook?.stop();
  if (ctx) await rm(ctx.dir, { recursive: true, force: true });
});

/** Every run id with a record that a restart would find. */
async function runIdsOnDisk(): Promise<string[]> {
  return (await allRunFiles(join(ctx.dir, 'state'))).flatMap((file) => /\/([0-9a-z]{26})\.json$/.exec(file)?.[1] ?? []);
}

describe('mutation fuzzing of /hooks', () => {
  it('never fails with 5xx and records runs only for correctly signed deliveries', { timeout: 60_000 + ITERATIONS * 40 }, async () => {
    console.log(`fuzz: seed ${SEED}, ${ITERATIONS} iterations (replay with FUZZ_SEED=${SEED} FUZZ_ITERATIONS=${ITERATIONS})`);
    const random = new Random(SEED);
    const requests = Array.from({ length: ITERATIONS }, (_, index) => mutatedRequest(random, ctx, index));

    const byStatus = new Map<number, number>();
    const acknowledged = new Set<string>();
    const problems: string[] = [];
    let signed = 0;
    await inParallel(requests, CONCURRENCY, async (request, index) => {
      const isSigned = correctlySigned(request);
      if (isSigned) signed += 1;
      const reply = await sendRaw(port, request);
      byStatus.set(reply.status, (byStatus.get(reply.status) ?? 0) + 1);
      const where = `iteration ${index} (${request.method} ${request.path}; ${request.mutations.join(', ')})`;
      // The one 5xx by design: a copy of a delivery whose first copy is still being recorded (two
      // mutations can give requests sent in parallel the same delivery id) is asked to retry.
      const inFlightCopy = reply.status === 503 && reply.headers['retry-after'] === '5' && reply.body.includes('this delivery is still being recorded');
      if (reply.status === 0 || (reply.status >= 500 && !inFlightCopy)) problems.push(`${where}: status ${reply.status} ${reply.body.slice(0, 200)}`);
      // Only webhooks are authenticated: GET /healthz is 200 to anyone.
      const isHook = request.path.startsWith('/hooks/');
      if (isHook && reply.status >= 200 && reply.status < 300 && !isSigned) problems.push(`${where}: ${reply.status} to a delivery that was not correctly signed`);
      if (SECRETS.some((secret) => reply.body.includes(secret))) problems.push(`${where}: the reply shows a secret`);
      if (reply.status === 202 && isSigned) {
        for (const run of (JSON.parse(reply.body) as { runs: Array<{ id: string }> }).runs) acknowledged.add(run.id);
      }
    });

    await hook.daemon.queue.whenIdle();
    const onDisk = await runIdsOnDisk();
    const unacknowledged = onDisk.filter((id) => !acknowledged.has(id));
    const lost = [...acknowledged].filter((id) => !onDisk.includes(id));
    const health = await fetch(`${hook.url}/healthz`);

    const summary = [...byStatus].sort(([a], [b]) => a - b).map(([status, count]) => `${status}: ${count}`).join(', ');
    console.log(`fuzz: ${ITERATIONS} requests, ${signed} correctly signed; by status: ${summary}; runs acknowledged: ${acknowledged.size}, records on disk: ${onDisk.length}`);

    expect(problems.slice(0, 20)).toEqual([]);
    expect(unacknowledged).toEqual([]);
    expect(lost).toEqual([]);
    expect(health.status).toBe(200);
    expect(existsSync(join(ctx.dir, 'fuzz-pwned'))).toBe(false);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const logs = hook.logLines.join('\n');
    for (const secret of SECRETS) expect(logs).not.toContain(secret);
    expect(hook.logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50)).toEqual([]);
  });
});
