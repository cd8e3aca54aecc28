import { createHmac, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { sign } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubPush, gitlabPush } from '../helpers/payloads.js';
import { requestHead, sendRaw, type RawHeader, type RawRequest, type RawResponse } from '../helpers/raw-http.js';
import { allRunFiles, waitForRun } from '../helpers/runs.js';

const WEB_SECRET = 'web-secret-3f9a1c0d5e7b2468';
const ROTATE_OLD = 'rotate-old-8c1e4b7a9d2f3065';
const ROTATE_NEW = 'rotate-new-51d0a7e3c9b86f24';
const LAB_TOKEN = 'lab-token-b4e8f2a6c0d9e137';
const SECRETS = [WEB_SECRET, ROTATE_OLD, ROTATE_NEW, LAB_TOKEN];
const UNRELATED = 'unrelated-secret-7a6b5c4d3e2f1a0b';
const MAX_BODY = 65_536;
const JOB_NAMES = ['web', 'web-rotating', 'lab'];

/** What every case may use: paths and commits exist only once the remotes are made. */
interface Context {
  dir: string;
  /** The tip of `main` on the configured remote. */
  mainSha: string;
  /** A commit that exists only on a repository no job is configured for. */
  evilSha: string;
  evilRemote: string;
  /** A branch with a shell-like name that exists on the configured remote, and its tip. */
  hostileBranch: string;
  hostileSha: string;
}

interface Outcome {
  reply: RawResponse;
  /** The final records of the runs the reply listed. */
  runs: RunRecord[];
}

interface Case {
  name: string;
  request: (ctx: Context) => RawRequest;
  status: number;
  /** What else must hold once the reply is in and every run it queued has finished. */
  then?: (ctx: Context, outcome: Outcome) => void | Promise<void>;
}

function hmacHex(algorithm: 'sha1' | 'sha256' | 'sha512', secret: string, body: string | Buffer): string {
  return createHmac(algorithm, secret).update(body).digest('hex');
}

const signature = (secret: string, body: string | Buffer) => `sha256=${hmacHex('sha256', secret, body)}`;

interface GithubOptions {
  /** Signs the body with this secret (default: the `web` job's). */
  secret?: string;
  /** Sent instead of a computed signature: one header per value; null sends none. */
  signature?: string | readonly string[] | null;
  event?: string;
  /** null sends no Content-Type. */
  contentType?: string | null;
  method?: string;
  path?: string;
  headers?: readonly RawHeader[];
}

/** A delivery as GitHub sends it, with a fresh delivery id so that redelivery detection never interferes. */
function github(body: string | Buffer, options: GithubOptions = {}): RawRequest {
  const bytes = Buffer.from(body);
  const signatures = options.signature === undefined ? [signature(options.secret ?? WEB_SECRET, bytes)] : [options.signature ?? []].flat();
  const headers: RawHeader[] = [];
  if (options.contentType !== null) headers.push(['Content-Type', options.contentType ?? 'application/json']);
  headers.push(['User-Agent', 'GitHub-Hookshot/adversarial'], ['X-GitHub-Event', options.event ?? 'push'], ['X-GitHub-Delivery', randomUUID()], ['X-GitHub-Hook-ID', '42']);
  for (const value of signatures) headers.push(['X-Hub-Signature-256', value]);
  return { method: options.method ?? 'POST', path: options.path ?? '/hooks/github', headers: [...headers, ...(options.headers ?? [])], body: bytes };
}

interface GitlabOptions {
  /** One header per value; null sends none. Default: the `lab` job's token. */
  token?: string | readonly string[] | null;
  path?: string;
}

function gitlab(body: string | Buffer, options: GitlabOptions = {}): RawRequest {
  const tokens = options.token === undefined ? [LAB_TOKEN] : [options.token ?? []].flat();
  const headers: RawHeader[] = [
    ['Content-Type', 'application/json'],
    ['User-Agent', 'GitLab/17.0.0'],
    ['X-Gitlab-Event', 'Push Hook'],
    ['X-Gitlab-Event-UUID', randomUUID()],
    ...tokens.map((token): RawHeader => ['X-Gitlab-Token', token]),
  ];
  return { method: 'POST', path: options.path ?? '/hooks/gitlab', headers, body: Buffer.from(body) };
}

/** GitHub's example push to `main` of acme/web at the remote's tip, with `fields` replaced. */
function webPush(ctx: Context, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...githubPush({ repo: 'acme/web', after: ctx.mainSha }), ...fields });
}

function labPush(ctx: Context, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ ...gitlabPush({ repo: 'acme/platform/lab', after: ctx.mainSha }), ...fields });
}

/** A push whose `head_commit.message` is replaced by raw bytes, which need not be UTF-8. */
function webPushWithBytes(ctx: Context, bytes: Buffer): Buffer {
  const payload = githubPush({ repo: 'acme/web', after: ctx.mainSha });
  (payload.head_commit as Record<string, unknown>).message = 'BYTES-GO-HERE';
  const [start = '', end = ''] = JSON.stringify(payload).split('BYTES-GO-HERE');
  return Buffer.concat([Buffer.from(start), bytes, Buffer.from(end)]);
}

/** A file a shell would create if a payload value were ever run as code. */
const trap = (ctx: Context, label: string) => join(ctx.dir, `pwned-${label}`);

function expectNoTrapSprung(path: string): void {
  expect(existsSync(path), `${path} must never be created`).toBe(false);
}

function replyJson(reply: RawResponse): Record<string, unknown> {
  return JSON.parse(reply.body) as Record<string, unknown>;
}

/** The reply to a verified delivery for a repository no job has: nothing queued, and why. */
function noJobFor(repo: string): NonNullable<Case['then']> {
  return (_ctx, { reply }) => expect(replyJson(reply)).toEqual({ delivery: expect.any(String), runs: [], reason: `no job is configured for repository ${JSON.stringify(repo)}` });
}

/** A push for a branch that a glob of `web` accepts but that is not on the remote: the run fails naming it. */
function hostileAcceptedBranch(name: string, branch: (ctx: Context) => string, trapLabel?: string): Case {
  return {
    name,
    request: (ctx) => github(webPush(ctx, { ref: `refs/heads/${branch(ctx)}` })),
    status: 202,
    then: (ctx, { runs }) => {
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ job: 'web', status: 'failed', branch: branch(ctx) });
      expect(runs[0]?.reason).toContain(`Expected the branch ${JSON.stringify(branch(ctx))} on the remote`);
      if (trapLabel !== undefined) expectNoTrapSprung(trap(ctx, trapLabel));
    },
  };
}

/** A push for a legal branch name no glob accepts: verified, answered 200, nothing runs. */
function hostileIgnoredBranch(name: string, branch: (ctx: Context) => string, trapLabel?: string): Case {
  return {
    name,
    request: (ctx) => github(webPush(ctx, { ref: `refs/heads/${branch(ctx)}` })),
    status: 200,
    then: (ctx, { reply }) => {
      expect(replyJson(reply).reason).toBe(`no job deploys branch ${JSON.stringify(branch(ctx))} of acme/web`);
      if (trapLabel !== undefined) expectNoTrapSprung(trap(ctx, trapLabel));
    },
  };
}

/** A correctly signed push whose `field` is `value`, refused with 400; no file named by a trap label ever appears. */
function refusedField(field: 'ref' | 'after', name: string, value: (ctx: Context) => unknown, trapLabel?: string): Case {
  return {
    name,
    request: (ctx) => github(webPush(ctx, { [field]: value(ctx) })),
    status: 400,
    ...(trapLabel !== undefined ? { then: (ctx: Context) => expectNoTrapSprung(trap(ctx, trapLabel)) } : {}),
  };
}

const badRef = (name: string, ref: (ctx: Context) => unknown, trapLabel?: string) => refusedField('ref', name, ref, trapLabel);
const badAfter = (name: string, after: (ctx: Context) => unknown, trapLabel?: string) => refusedField('after', name, after, trapLabel);

const verification: Case[] = [
  // Verified before the body is parsed: what nobody signed is never parsed, however it is built.
  { name: 'malformed JSON with a well-formed but wrong signature', request: () => github('{"repository":', { signature: WELL_FORMED_SIGNATURE }), status: 401 },
  { name: 'a body of 30,000 nested arrays with a well-formed but wrong signature', request: () => github(`${'['.repeat(30_000)}${']'.repeat(30_000)}`, { signature: WELL_FORMED_SIGNATURE }), status: 401 },
  { name: 'a push without X-Hub-Signature-256', request: (ctx) => github(webPush(ctx), { signature: null }), status: 401 },
  { name: 'an empty X-Hub-Signature-256', request: (ctx) => github(webPush(ctx), { signature: '' }), status: 401 },
  { name: 'a signature of just "sha256="', request: (ctx) => github(webPush(ctx), { signature: 'sha256=' }), status: 401 },
  { name: 'a signature with an odd number of hex digits', request: (ctx) => github(webPush(ctx), { signature: signature(WEB_SECRET, webPush(ctx)).slice(0, -1) }), status: 401 },
  { name: 'a signature with one hex digit too many', request: (ctx) => github(webPush(ctx), { signature: `${signature(WEB_SECRET, webPush(ctx))}0` }), status: 401 },
  { name: 'a signature with a non-hex character', request: (ctx) => github(webPush(ctx), { signature: `${signature(WEB_SECRET, webPush(ctx)).slice(0, -1)}g` }), status: 401 },
  { name: 'the correct signature in uppercase hex', request: (ctx) => github(webPush(ctx), { signature: `sha256=${hmacHex('sha256', WEB_SECRET, webPush(ctx)).toUpperCase()}` }), status: 401 },
  { name: 'the correct digest behind an uppercase "SHA256=" prefix', request: (ctx) => github(webPush(ctx), { signature: `SHA256=${hmacHex('sha256', WEB_SECRET, webPush(ctx))}` }), status: 401 },
  { name: 'a correct HMAC-SHA1 as "sha1=" in X-Hub-Signature-256', request: (ctx) => github(webPush(ctx), { signature: `sha1=${hmacHex('sha1', WEB_SECRET, webPush(ctx))}` }), status: 401 },
  {
    name: 'only the legacy X-Hub-Signature with a correct HMAC-SHA1',
    request: (ctx) => github(webPush(ctx), { signature: null, headers: [['X-Hub-Signature', `sha1=${hmacHex('sha1', WEB_SECRET, webPush(ctx))}`]] }),
    status: 401,
  },
  { name: 'a correct HMAC-SHA512 as "sha512="', request: (ctx) => github(webPush(ctx), { signature: `sha512=${hmacHex('sha512', WEB_SECRET, webPush(ctx))}` }), status: 401 },
  { name: 'the correct signature with a space after "sha256="', request: (ctx) => github(webPush(ctx), { signature: signature(WEB_SECRET, webPush(ctx)).replace('=', '= ') }), status: 401 },
  { name: 'the correct signature with a space inside the hex', request: (ctx) => github(webPush(ctx), { signature: signature(WEB_SECRET, webPush(ctx)).replace(/(.{30})/, '$1 ') }), status: 401 },
  { name: 'the correct signature after a no-break space', request: (ctx) => github(webPush(ctx), { signature: `\u00a0${signature(WEB_SECRET, webPush(ctx))}` }), status: 401 },
  { name: 'the correct signature after a vertical tab, which the HTTP parser refuses', request: (ctx) => github(webPush(ctx), { signature: `\u000b${signature(WEB_SECRET, webPush(ctx))}` }), status: 400 },
  {
    // HTTP strips optional whitespace around a field value before any handler sees it.
    name: 'the correct signature with leading and trailing spaces, which HTTP strips as optional whitespace',
    request: (ctx) => github(webPush(ctx), { signature: `   ${signature(WEB_SECRET, webPush(ctx))}  \t` }),
    status: 202,
  },
  { name: 'X-Hub-Signature-256 sent twice, both correct', request: (ctx) => github(webPush(ctx), { signature: [signature(WEB_SECRET, webPush(ctx)), signature(WEB_SECRET, webPush(ctx))] }), status: 401 },
  { name: 'X-Hub-Signature-256 sent twice, a wrong one first', request: (ctx) => github(webPush(ctx), { signature: [`sha256=${'0'.repeat(64)}`, signature(WEB_SECRET, webPush(ctx))] }), status: 401 },
  { name: 'a signature of 10,000 hex digits', request: (ctx) => github(webPush(ctx), { signature: `sha256=${'ab'.repeat(5_000)}` }), status: 401 },
  { name: 'a signature header over the 16 KiB header limit', request: (ctx) => github(webPush(ctx), { signature: `sha256=${'ab'.repeat(10_000)}` }), status: 431 },
  { name: 'the signature of a different body', request: (ctx) => github(webPush(ctx), { signature: signature(WEB_SECRET, webPush(ctx, { ref: 'refs/heads/release/1' })) }), status: 401 },
  { name: 'a signed push changed in one byte after signing', request: (ctx) => ({ ...github(webPush(ctx)), body: Buffer.from(webPush(ctx).replace('"forced":false', '"forced":true ')) }), status: 401 },
  { name: 'a push signed with the GitLab job\'s token', request: (ctx) => github(webPush(ctx), { secret: LAB_TOKEN }), status: 401 },
  { name: 'a push signed with the web secret changed in its last character', request: (ctx) => github(webPush(ctx), { secret: `${WEB_SECRET.slice(0, -1)}9` }), status: 401 },
  {
    name: 'a push signed with the secret of the other job of the repository, for a branch only the first job deploys',
    request: (ctx) => github(webPush(ctx, { ref: 'refs/heads/release/1' }), { secret: ROTATE_OLD }),
    status: 200,
  },
  { name: 'a push to /hooks/github carrying only a GitLab token', request: (ctx) => github(webPush(ctx), { signature: null, headers: [['X-Gitlab-Token', WEB_SECRET]] }), status: 401 },
  // An organisation's hook, signed with the secret of its jobs, covers repositories without a job too.
  { name: 'a correctly signed push for a repository no job is configured for', request: (ctx) => github(webPush(ctx, { repository: { full_name: 'acme/unknown' } })), status: 200, then: noJobFor('acme/unknown') },
  { name: 'a push for a repository no job is configured for, signed with another secret', request: (ctx) => github(webPush(ctx, { repository: { full_name: 'acme/unknown' } }), { secret: UNRELATED }), status: 401 },
  { name: 'a GitHub push for the GitLab job\'s repository signed with its token', request: (ctx) => github(webPush(ctx, { repository: { full_name: 'acme/platform/lab' } }), { secret: LAB_TOKEN }), status: 401 },
  { name: 'a GitLab push without X-Gitlab-Token', request: (ctx) => gitlab(labPush(ctx), { token: null }), status: 401 },
  { name: 'a GitLab push with an empty token', request: (ctx) => gitlab(labPush(ctx), { token: '' }), status: 401 },
  { name: 'a GitLab push with a wrong token', request: (ctx) => gitlab(labPush(ctx), { token: UNRELATED }), status: 401 },
  { name: 'a GitLab push with a prefix of the token', request: (ctx) => gitlab(labPush(ctx), { token: LAB_TOKEN.slice(0, -1) }), status: 401 },
  { name: 'a GitLab push with the token plus a suffix', request: (ctx) => gitlab(labPush(ctx), { token: `${LAB_TOKEN}0` }), status: 401 },
  { name: 'a GitLab push with the token sent twice', request: (ctx) => gitlab(labPush(ctx), { token: [LAB_TOKEN, LAB_TOKEN] }), status: 401 },
  { name: 'a GitLab push with a token of 2,000 characters', request: (ctx) => gitlab(labPush(ctx), { token: LAB_TOKEN.repeat(80) }), status: 401 },
  { name: 'a GitLab push with the GitHub job\'s secret as token', request: (ctx) => gitlab(labPush(ctx), { token: WEB_SECRET }), status: 401 },
  { name: 'a GitLab push for a project no job is configured for', request: (ctx) => gitlab(labPush(ctx, { project: { path_with_namespace: 'acme/platform/other' } })), status: 200, then: noJobFor('acme/platform/other') },
  { name: 'a GitLab push for a project no job is configured for, with a wrong token', request: (ctx) => gitlab(labPush(ctx, { project: { path_with_namespace: 'acme/platform/other' } }), { token: UNRELATED }), status: 401 },
  { name: 'a GitLab push naming the GitHub job\'s repository', request: (ctx) => gitlab(labPush(ctx, { project: { path_with_namespace: 'acme/web' } }), { token: WEB_SECRET }), status: 401 },
];

const rotation: Case[] = [
  {
    name: 'a push signed with the old secret of a job that rotates',
    request: (ctx) => github(webPush(ctx), { secret: ROTATE_OLD }),
    status: 202,
    then: (_ctx, { runs }) => expect(runs.map((run) => [run.job, run.status])).toEqual([['web-rotating', 'succeeded']]),
  },
  {
    name: 'a push signed with the new secret of a job that rotates',
    request: (ctx) => github(webPush(ctx), { secret: ROTATE_NEW }),
    status: 202,
    then: (_ctx, { runs }) => expect(runs.map((run) => [run.job, run.status])).toEqual([['web-rotating', 'succeeded']]),
  },
  { name: 'a push signed with a third secret the rotating job does not list', request: (ctx) => github(webPush(ctx), { secret: UNRELATED }), status: 401 },
];

/** Well formed, so that the checks after the signature's shape are reached, but not the HMAC of anything sent. */
const WELL_FORMED_SIGNATURE = `sha256=${'0'.repeat(64)}`;

const limits: Case[] = [
  { name: 'a Content-Length one byte over the limit, without sending the body', request: () => github('', { signature: WELL_FORMED_SIGNATURE, headers: [['Content-Length', String(MAX_BODY + 1)]] }), status: 413 },
  { name: 'a Content-Length of 10 GB, without sending the body', request: () => github('', { signature: WELL_FORMED_SIGNATURE, headers: [['Content-Length', '10000000000']] }), status: 413 },
  { name: 'a Content-Length over the limit without a signature', request: () => github('', { signature: null, headers: [['Content-Length', String(MAX_BODY + 1)]] }), status: 401 },
  { name: 'a chunked body growing past the limit', request: () => ({ ...github('', { signature: WELL_FORMED_SIGNATURE }), chunks: Array.from({ length: 100 }, () => Buffer.alloc(1024, 'x')) }), status: 413 },
  {
    name: 'a correctly signed push of one byte over the limit',
    request: (ctx) => {
      const body = webPush(ctx, { padding: '' });
      return github(body.replace('"padding":""', `"padding":"${'x'.repeat(MAX_BODY + 1 - Buffer.byteLength(body))}"`));
    },
    status: 413,
  },
  {
    name: 'a correctly signed push of exactly the limit',
    request: (ctx) => {
      const body = webPush(ctx, { padding: '' });
      return github(body.replace('"padding":""', `"padding":"${'x'.repeat(MAX_BODY - Buffer.byteLength(body))}"`));
    },
    status: 202,
    then: (_ctx, { runs }) => expect(runs.map((run) => run.status)).toEqual(['succeeded']),
  },
  { name: 'a signed push sent as text/plain', request: (ctx) => github(webPush(ctx), { contentType: 'text/plain' }), status: 415 },
  { name: 'a signed push sent form-encoded, as GitHub does by default', request: (ctx) => github(`payload=${encodeURIComponent(webPush(ctx))}`, { contentType: 'application/x-www-form-urlencoded' }), status: 202 },
  { name: 'a form-encoded push signed over its decoded JSON instead of the raw form', request: (ctx) => github(`payload=${encodeURIComponent(webPush(ctx))}`, { contentType: 'application/x-www-form-urlencoded', signature: signature(WEB_SECRET, Buffer.from(webPush(ctx))) }), status: 401 },
  { name: 'a signed form without a payload field', request: () => github('other=1', { contentType: 'application/x-www-form-urlencoded' }), status: 400 },
  {
    name: 'a GitLab push sent form-encoded (only GitHub sends forms)',
    request: (ctx) => {
      const request = gitlab(`payload=${encodeURIComponent(labPush(ctx))}`);
      return { ...request, headers: request.headers.map(([name, value]): RawHeader => (name === 'Content-Type' ? [name, 'application/x-www-form-urlencoded'] : [name, value])) };
    },
    status: 415,
  },
  { name: 'a signed push without Content-Type', request: (ctx) => github(webPush(ctx), { contentType: null }), status: 415 },
  { name: 'a signed push sent as application/jsonp', request: (ctx) => github(webPush(ctx), { contentType: 'application/jsonp' }), status: 415 },
  { name: 'a signed push sent as multipart/form-data', request: (ctx) => github(webPush(ctx), { contentType: 'multipart/form-data; boundary=x' }), status: 415 },
  { name: 'GET /hooks/github', request: (ctx) => github(webPush(ctx), { method: 'GET' }), status: 405 },
  { name: 'PUT /hooks/github', request: (ctx) => github(webPush(ctx), { method: 'PUT' }), status: 405 },
  { name: 'DELETE /hooks/github', request: () => github('', { method: 'DELETE' }), status: 405 },
  { name: 'PATCH /hooks/github', request: (ctx) => github(webPush(ctx), { method: 'PATCH' }), status: 405 },
  { name: 'HEAD /hooks/github', request: () => github('', { method: 'HEAD' }), status: 405 },
  { name: 'OPTIONS /hooks/gitlab', request: (ctx) => ({ ...gitlab(labPush(ctx)), method: 'OPTIONS' }), status: 405 },
  { name: 'a push to an unknown provider', request: (ctx) => github(webPush(ctx), { path: '/hooks/svn' }), status: 404 },
  { name: 'a push to /hooks/constructor', request: (ctx) => github(webPush(ctx), { path: '/hooks/constructor' }), status: 404 },
  { name: 'a push to /hooks/__proto__', request: (ctx) => github(webPush(ctx), { path: '/hooks/__proto__' }), status: 404 },
  { name: 'a push to /hooks/GitHub in another case', request: (ctx) => github(webPush(ctx), { path: '/hooks/GitHub' }), status: 404 },
  { name: 'a push to a path below the provider', request: (ctx) => github(webPush(ctx), { path: '/hooks/github/../../etc/passwd' }), status: 404 },
  { name: 'a push to a percent-encoded provider name', request: (ctx) => github(webPush(ctx), { path: '/hooks/%67ithub' }), status: 404 },
  { name: 'a request with both Content-Length and Transfer-Encoding', request: (ctx) => github(webPush(ctx), { headers: [['Content-Length', '10'], ['Transfer-Encoding', 'chunked']] }), status: 400 },
  { name: 'a request with two different Content-Length headers', request: (ctx) => github(webPush(ctx), { headers: [['Content-Length', String(Buffer.byteLength(webPush(ctx)))], ['Content-Length', '5']] }), status: 400 },
  { name: 'a request with a non-numeric Content-Length', request: (ctx) => github(webPush(ctx), { headers: [['Content-Length', '0x10']] }), status: 400 },
];

const parsing: Case[] = [
  { name: 'a correctly signed push starting with a UTF-8 byte order mark (its payload file would not parse)', request: (ctx) => github(`\uFEFF${webPush(ctx)}`), status: 400 },
  { name: '32,000 nested arrays', request: () => github(`${'['.repeat(32_000)}${']'.repeat(32_000)}`), status: 400 },
  { name: '65,000 unclosed brackets', request: () => github('['.repeat(65_000)), status: 400 },
  { name: '10,000 nested objects', request: () => github(`${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`), status: 400 },
  {
    name: 'a correctly signed push carrying 20,000 nested arrays in an unused field',
    request: (ctx) => github(webPush(ctx, { deep: 'DEEP' }).replace('"DEEP"', `${'['.repeat(20_000)}${']'.repeat(20_000)}`)),
    status: 202,
    then: (_ctx, { runs }) => expect(runs.map((run) => run.status)).toEqual(['succeeded']),
  },
  { name: 'a signed push with a 0xFF byte', request: (ctx) => github(webPushWithBytes(ctx, Buffer.from([0x66, 0xff, 0x66]))), status: 400 },
  { name: 'a signed push with an overlong UTF-8 encoding of "/"', request: (ctx) => github(webPushWithBytes(ctx, Buffer.from([0xc0, 0xaf]))), status: 400 },
  { name: 'a signed push with a UTF-8 encoded surrogate', request: (ctx) => github(webPushWithBytes(ctx, Buffer.from([0xed, 0xa0, 0x80]))), status: 400 },
  { name: 'a signed push with a multi-byte character cut short', request: (ctx) => github(webPushWithBytes(ctx, Buffer.from([0xe2, 0x82]))), status: 400 },
  {
    name: 'a signed push whose duplicate "repository" key names an unconfigured repository last',
    request: (ctx) => github(webPush(ctx).replace(/^\{/, '{"repository":{"full_name":"acme/web"},').replace(/\}$/, ',"repository":{"full_name":"acme/elsewhere"}}')),
    status: 200,
    then: noJobFor('acme/elsewhere'),
  },
  { name: 'a signed push whose duplicate "ref" key is invalid last', request: (ctx) => github(webPush(ctx).replace(/\}$/, ',"ref":"main"}')), status: 400 },
  { name: 'a signed push whose duplicate "after" key is "HEAD~1" last', request: (ctx) => github(webPush(ctx).replace(/\}$/, ',"after":"HEAD~1"}')), status: 400 },
  {
    name: 'a signed payload whose repository, ref and commits hide behind "__proto__"',
    request: (ctx) => github(`{"__proto__":${webPush(ctx)}}`),
    status: 400,
  },
  {
    name: 'a signed push whose repository name hides behind "__proto__"',
    request: (ctx) => github(webPush(ctx, { repository: 'REPOSITORY' }).replace('"REPOSITORY"', '{"__proto__":{"full_name":"acme/web"}}')),
    status: 400,
  },
  {
    name: 'a signed push with "__proto__" and "constructor.prototype" keys and a ref that is an object',
    request: (ctx) =>
      github(
        webPush(ctx, { constructor: { prototype: { polluted: 'yes' } }, ref: 'REF' })
          .replace('"REF"', '{"__proto__":"refs/heads/main","toString":"refs/heads/main"}')
          .replace(/\}$/, ',"__proto__":{"polluted":"yes"}}'),
      ),
    status: 400,
  },
  { name: 'an unsigned push with "__proto__" and "constructor" keys', request: (ctx) => github(webPush(ctx, { constructor: { prototype: { polluted: 'yes' } } }).replace(/\}$/, ',"__proto__":{"polluted":"yes"}}'), { signature: null }), status: 401 },
  { name: 'a signed JSON null', request: () => github('null'), status: 400 },
  { name: 'a signed JSON array', request: () => github('[{"repository":{"full_name":"acme/web"}}]'), status: 400 },
  { name: 'a signed JSON number', request: () => github('42'), status: 400 },
  { name: 'a signed JSON string', request: () => github('"acme/web"'), status: 400 },
  { name: 'a signed JSON true', request: () => github('true'), status: 400 },
  { name: 'a signed empty object', request: () => github('{}'), status: 400 },
  { name: 'a signed empty body', request: () => github(''), status: 400 },
  { name: 'a signed body of whitespace', request: () => github(' \n\t '), status: 400 },
  { name: 'a signed push with a trailing comma', request: (ctx) => github(webPush(ctx).replace(/\}$/, ',}')), status: 400 },
  { name: 'a signed push whose repository name is an object', request: (ctx) => github(webPush(ctx, { repository: { full_name: { toString: 'acme/web' } } })), status: 400 },
];

const data: Case[] = [
  badRef('a signed push for "main", not a full ref', () => 'main'),
  badRef('a signed push for a ref with ".."', () => 'refs/heads/a..b'),
  badRef('a signed push for a ref with "@{"', () => 'refs/heads/main@{1}'),
  badRef('a signed push for a ref with a NUL byte', () => 'refs/heads/ma\u0000in'),
  badRef('a signed push for a ref with a newline', () => 'refs/heads/main\nrefs/heads/release/1'),
  badRef('a signed push for a ref with DEL', () => 'refs/heads/ma\u007fin'),
  badRef('a signed push for a ref with a tab', () => 'refs/heads/ma\tin'),
  badRef('a signed push for a ref with spaces naming a shell command', (ctx) => `refs/heads/hostile/$(touch ${trap(ctx, 'space')})`, 'space'),
  ...['~', '^', ':', '?', '*', '[', '\\'].map((char) => badRef(`a signed push for a ref with "${char}"`, () => `refs/heads/hostile/a${char}b`)),
  badRef('a signed push for a ref ending in ".lock"', () => 'refs/heads/hostile/x.lock'),
  badRef('a signed push for a ref ending in "/"', () => 'refs/heads/hostile/'),
  badRef('a signed push for a ref ending in "."', () => 'refs/heads/hostile/x.'),
  badRef('a signed push for a ref with a component starting with "."', () => 'refs/heads/hostile/.git'),
  badRef('a signed push for a ref with "//"', () => 'refs/heads/hostile//x'),
  badRef('a signed push for the ref "refs/heads/@"', () => 'refs/heads/@'),
  badRef('a signed push for a remote-tracking ref', () => 'refs/remotes/origin/main'),
  badRef('a signed push for "refs/heads/" alone', () => 'refs/heads/'),
  badRef('a signed push for a ref of 1,025 characters', () => `refs/heads/hostile/${'x'.repeat(1_025 - 'refs/heads/hostile/'.length)}`),
  badRef('a signed push whose ref is a list', () => ['refs/heads/main']),
  badRef('a signed push whose ref is a number', () => 42),
  badAfter('a signed push for a short commit', () => 'abc1234'),
  badAfter('a signed push for an uppercase commit', (ctx) => ctx.mainSha.toUpperCase()),
  badAfter('a signed push for "HEAD~1"', () => 'HEAD~1'),
  badAfter('a signed push for the commit "--upload-pack=…"', (ctx) => `--upload-pack=touch ${trap(ctx, 'upload-pack')}`, 'upload-pack'),
  badAfter('a signed push for a commit of 41 hex digits', (ctx) => `${ctx.mainSha}0`),
  badAfter('a signed push for a commit of 39 hex digits', (ctx) => ctx.mainSha.slice(1)),
  badAfter('a signed push for a commit followed by a newline', (ctx) => `${ctx.mainSha}\n`),
  badAfter('a signed push whose commit is a number', () => 1234567),
  {
    name: 'a signed push whose "before" is a git option',
    request: (ctx) => github(webPush(ctx, { before: `-c core.sshCommand=touch ${trap(ctx, 'before')}` })),
    status: 400,
    then: (ctx) => expectNoTrapSprung(trap(ctx, 'before')),
  },
  hostileIgnoredBranch('a signed push for "$(touch …)", a branch no glob accepts', (ctx) => `$(touch\${IFS}${trap(ctx, 'ignored-subst')})`, 'ignored-subst'),
  hostileIgnoredBranch('a signed push for ";id", a branch no glob accepts', () => ';id'),
  hostileIgnoredBranch('a signed push for a backtick command, a branch no glob accepts', (ctx) => `\`touch\${IFS}${trap(ctx, 'ignored-backtick')}\``, 'ignored-backtick'),
  hostileIgnoredBranch('a signed push for "-x", a branch no glob accepts', () => '-x'),
  hostileIgnoredBranch('a signed push for a unicode branch no glob accepts', () => 'fonctionnalité/日本語'),
  {
    name: 'a signed tag push named like a shell command',
    request: (ctx) => github(webPush(ctx, { ref: `refs/tags/$(touch\${IFS}${trap(ctx, 'tag')})` })),
    status: 200,
    then: (ctx) => expectNoTrapSprung(trap(ctx, 'tag')),
  },
  hostileAcceptedBranch('a signed push for "hostile/$(touch …)", missing on the remote', (ctx) => `hostile/$(touch\${IFS}${trap(ctx, 'accepted-subst')})`, 'accepted-subst'),
  hostileAcceptedBranch('a signed push for "hostile/;id", missing on the remote', () => 'hostile/;id'),
  hostileAcceptedBranch('a signed push for a backtick command under "hostile/", missing on the remote', (ctx) => `hostile/\`touch\${IFS}${trap(ctx, 'accepted-backtick')}\``, 'accepted-backtick'),
  hostileAcceptedBranch('a signed push for "hostile/-x", missing on the remote', () => 'hostile/-x'),
  hostileAcceptedBranch('a signed push for "hostile/--upload-pack=…", missing on the remote', (ctx) => `hostile/--upload-pack=touch\${IFS}${trap(ctx, 'accepted-option')}`, 'accepted-option'),
  hostileAcceptedBranch('a signed push for a unicode branch, missing on the remote', () => 'hostile/déploiement-🚀-日本語'),
  {
    name: 'a signed push for a branch with C1 controls (a line break, an escape), which its log header shows as "?"',
    request: (ctx) => github(webPush(ctx, { ref: 'refs/heads/hostile/a\u0085deployhook-finished-succeeded\u009b2J' })),
    status: 202,
    then: async (_ctx, { runs }) => {
      expect(runs).toHaveLength(1);
      const log = await readFile(runs[0]?.logPath ?? '', 'utf8');
      expect(log).toContain('ref:      refs/heads/hostile/a?deployhook-finished-succeeded?2J\n');
      // deployhook's own lines; git's output, like the command's, is as git wrote it.
      const own = log.split('\n').filter((line) => line.startsWith('[deployhook]') || line.startsWith('$ '));
      expect(own.filter((line) => /[\u0085\u009b]/.test(line))).toEqual([]);
      expect(own).toContain("$ git show-ref --verify --quiet -- 'refs/remotes/origin/hostile/a?deployhook-finished-succeeded?2J'");
    },
  },
  {
    name: 'a signed push whose pusher name holds a NUL, an escape, a Unicode line break and 50,000 more characters: the run goes ahead with it cleaned and cut',
    request: (ctx) => github(webPush(ctx, { pusher: { name: `evil\u0000name\u009b2J\u2028${'x'.repeat(50_000)}`, email: 'evil@example.com' } })),
    status: 202,
    then: async (_ctx, { runs }) => {
      expect(runs).toHaveLength(1);
      const pusher = `evilname\u009b2J\u2028${'x'.repeat(256 - Buffer.byteLength('evilname\u009b2J\u2028'))}`;
      expect(runs[0]).toMatchObject({ job: 'web', status: 'succeeded', trigger: { pusher } });
      expect(await readFile(runs[0]?.logPath ?? '', 'utf8')).toContain(`(github, pushed by evilname?2J?${'x'.repeat(241)})\n`);
    },
  },
  {
    name: 'a signed push for a branch named like a shell command that exists on the remote',
    request: (ctx) => github(webPush(ctx, { ref: `refs/heads/${ctx.hostileBranch}`, after: ctx.hostileSha })),
    status: 202,
    then: (ctx, { runs }) => {
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ job: 'web', status: 'succeeded', branch: ctx.hostileBranch, deployedSha: ctx.hostileSha });
      expectNoTrapSprung(trap(ctx, 'existing'));
    },
  },
  {
    name: 'a signed push whose clone, ssh, git and svn URLs point at another repository',
    request: (ctx) => {
      const payload = githubPush({ repo: 'acme/web', after: ctx.evilSha });
      const urls = { clone_url: ctx.evilRemote, ssh_url: ctx.evilRemote, git_url: `file://${ctx.evilRemote}`, svn_url: ctx.evilRemote, html_url: ctx.evilRemote, url: ctx.evilRemote, mirror_url: ctx.evilRemote };
      return github(JSON.stringify({ ...payload, repository: { ...(payload.repository as Record<string, unknown>), ...urls } }));
    },
    status: 202,
    then: (ctx, { runs }) => {
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ job: 'web', status: 'succeeded', sha: ctx.evilSha, deployedSha: ctx.mainSha });
      expect(existsSync(join(ctx.dir, 'state', 'checkouts', 'web', 'EVIL.txt'))).toBe(false);
    },
  },
  {
    name: 'a GitLab push whose project URLs point at another repository',
    request: (ctx) => {
      const payload = gitlabPush({ repo: 'acme/platform/lab', after: ctx.evilSha });
      const urls = { git_http_url: ctx.evilRemote, git_ssh_url: ctx.evilRemote, http_url: ctx.evilRemote, ssh_url: ctx.evilRemote, url: ctx.evilRemote, web_url: ctx.evilRemote };
      return gitlab(JSON.stringify({ ...payload, project: { ...(payload.project as Record<string, unknown>), ...urls }, repository: { url: ctx.evilRemote, git_http_url: ctx.evilRemote } }));
    },
    status: 202,
    then: (ctx, { runs }) => {
      expect(runs).toHaveLength(1);
      expect(runs[0]).toMatchObject({ job: 'lab', status: 'succeeded', sha: ctx.evilSha, deployedSha: ctx.mainSha });
      expect(existsSync(join(ctx.dir, 'state', 'checkouts', 'lab', 'EVIL.txt'))).toBe(false);
    },
  },
];

// Signed with a job's secret, for a repository no job has: nothing deployed, nothing written.
const webRepoNamed = (name: string, fullName: string): Case => ({ name, request: (ctx) => github(webPush(ctx, { repository: { full_name: fullName } })), status: 200, then: noJobFor(fullName) });
const labProjectNamed = (name: string, path: string): Case => ({ name, request: (ctx) => gitlab(labPush(ctx, { project: { path_with_namespace: path } })), status: 200, then: noJobFor(path) });

const paths: Case[] = [
  webRepoNamed('a signed push for the repository "../../etc/passwd"', '../../etc/passwd'),
  webRepoNamed('a signed push for the repository "acme/web/../../x"', 'acme/web/../../x'),
  webRepoNamed('a signed push for the repository "/etc/passwd"', '/etc/passwd'),
  webRepoNamed('a signed push for the repository "acme/../acme/web"', 'acme/../acme/web'),
  webRepoNamed('a signed push for the repository "acme/web/"', 'acme/web/'),
  webRepoNamed('a signed push for the repository "acme/web" plus a NUL byte', 'acme/web\u0000'),
  webRepoNamed('a signed push for the repository "acme%2Fweb"', 'acme%2Fweb'),
  webRepoNamed('a signed push for the repository "acme\\web"', 'acme\\web'),
  labProjectNamed('a GitLab push for the project "../../../etc/passwd"', '../../../etc/passwd'),
  labProjectNamed('a GitLab push for the project "acme/platform/lab/../../../x"', 'acme/platform/lab/../../../x'),
  labProjectNamed('a GitLab push for the project "/acme/platform/lab"', '/acme/platform/lab'),
];

let ctx: Context;
let hook: TestDaemon;
let port: number;
let marker: string;
const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'deployhook-adversarial-'));
  const remotes = join(dir, 'remotes');
  const remote = await createRemote(remotes, 'web');
  const hostileBranch = `hostile/$(touch\${IFS}${join(dir, 'pwned-existing')})`;
  const hostileSha = await remote.commit({ 'hostile.txt': 'a branch with a hostile name\n' }, 'hostile branch', hostileBranch);
  const mainSha = await remote.commit({ 'README.md': 'the configured remote\n' }, 'main', 'main');
  const evil = await createRemote(remotes, 'evil');
  const evilSha = await evil.commit({ 'EVIL.txt': 'must never be deployed\n' });
  marker = join(dir, 'marker', 'ran.txt');
  await mkdir(join(dir, 'marker'));
  await writeFile(marker, '');
  ctx = { dir, mainSha, evilSha, evilRemote: evil.bare, hostileBranch, hostileSha };

  const job = { remote: remote.bare, command: ['sh', '-c', 'echo ran >> "$1"', 'sh', marker], timeout: '60s' };
  hook = await startDaemon(
    dir,
    {
      max_body_bytes: MAX_BODY,
      headers_timeout: '1s',
      request_timeout: '2s',
      jobs: [
        { ...job, name: 'web', provider: 'github', repo: 'acme/web', branches: ['main', 'release/*', 'hostile/**'], secret_env: 'WEB_SECRET' },
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
  expectNoSecretIn(hook?.logLines.join('\n') ?? '');
  if (ctx) await rm(ctx.dir, { recursive: true, force: true });
});

const RUN_FILE = /^[0-9a-z]{26}(\.event)?\.json$/;

/** `<job>/<file>` for every run record and stored payload a restart would find. */
async function runFiles(): Promise<string[]> {
  return (await allRunFiles(join(ctx.dir, 'state'))).filter((file) => RUN_FILE.test(file.slice(file.indexOf('/') + 1)));
}

/** Every path under the test folder outside the daemon's state and log folders. */
async function treeOutsideDaemonFolders(): Promise<string[]> {
  const found: string[] = [];
  const walk = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      const rel = relative(ctx.dir, path);
      if (rel === 'state' || rel === 'logs') continue;
      found.push(rel);
      if (entry.isDirectory()) await walk(path);
    }
  };
  await walk(ctx.dir);
  return found.sort();
}

async function markerLines(): Promise<number> {
  return (await readFile(marker, 'utf8')).split('\n').filter(Boolean).length;
}

function expectNoSecretIn(text: string): void {
  for (const secret of SECRETS) expect(text).not.toContain(secret);
}

async function checkedCase(testCase: Case): Promise<void> {
  const runsBefore = await runFiles();
  const treeBefore = await treeOutsideDaemonFolders();
  const linesBefore = await markerLines();

  const reply = await sendRaw(port, testCase.request(ctx));
  expect(reply.status, reply.body).toBe(testCase.status);
  expect(reply.status).toBeLessThan(500);

  const listed = reply.status === 202 ? (replyJson(reply).runs as Array<{ id: string; job: string }>) : [];
  if (reply.status === 202) expect(listed.length).toBeGreaterThan(0);
  const runs = await Promise.all(listed.map((run) => waitForRun(join(ctx.dir, 'state'), run.job, run.id)));

  // Exactly the runs the reply acknowledged were recorded: none for anything that is not 202.
  const created = (await runFiles()).filter((file) => !runsBefore.includes(file));
  expect(created).toEqual(listed.flatMap((run) => [`${run.job}/${run.id}.event.json`, `${run.job}/${run.id}.json`]).sort());
  expect(await markerLines()).toBe(linesBefore + runs.filter((run) => run.status === 'succeeded').length);

  expect(await treeOutsideDaemonFolders()).toEqual(treeBefore);
  for (const folder of ['logs', join('state', 'runs'), join('state', 'checkouts')]) {
    const names = await readdir(join(ctx.dir, folder)).catch(() => [] as string[]);
    for (const name of names) expect(JOB_NAMES).toContain(name);
  }
  expect(await stat(join(ctx.dir, 'state')).then((info) => info.isDirectory())).toBe(true);

  expectNoSecretIn(reply.body);
  expectNoSecretIn(JSON.stringify(reply.headers));
  expectNoSecretIn(hook.logLines.join('\n'));
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);

  await testCase.then?.(ctx, { reply, runs });
}

const sentence = 'answers $status to $name, records only what it acknowledged and reveals no secret';

describe('verification fails closed', () => {
  it('signs test deliveries the way GitHub does', async () => {
    const body = webPush(ctx);
    expect(signature(WEB_SECRET, body)).toBe(await sign(WEB_SECRET, body));
  });

  it.each(verification)(sentence, checkedCase);
});

describe('secret rotation', () => {
  it.each(rotation)(sentence, checkedCase);
});

describe('limits', () => {
  it.each(limits)(sentence, checkedCase);
});

describe('parsing', () => {
  it.each(parsing)(sentence, checkedCase);
});

describe('payload data stays data', () => {
  it.each(data)(sentence, checkedCase);
});

describe('repository names never become paths', () => {
  it.each(paths)(sentence, checkedCase);
});

interface Trickle {
  /** The status line's code, 0 when the server closed without a reply. */
  status: number;
  /** How many bytes of the request had been sent when the server closed the connection. */
  sent: number;
  total: number;
}

/** Sends `head` and then `body` one byte every 200 ms, after the first `fast` bytes, until the server closes. */
function trickle(head: Buffer, body: Buffer, fast: number): Promise<Trickle> {
  const request = Buffer.concat([head, body]);
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const received: Buffer[] = [];
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(Buffer.concat(received).toString('latin1'))?.[1] ?? 0);
      resolve({ status, sent, total: request.length });
    });
    socket.on('connect', () => {
      socket.write(request.subarray(0, fast));
      sent = fast;
      timer = setInterval(() => {
        if (sent >= request.length || socket.destroyed) return;
        socket.write(request.subarray(sent, sent + 1));
        sent += 1;
      }, 200);
    });
  });
}

describe('slow clients', () => {
  async function expectQueuedAndRun(reply: RawResponse): Promise<void> {
    expect(reply.status, reply.body).toBe(202);
    const runs = replyJson(reply).runs as Array<{ id: string; job: string }>;
    for (const run of runs) expect(await waitForRun(join(ctx.dir, 'state'), run.job, run.id)).toMatchObject({ status: 'succeeded' });
  }

  it('drops clients that send their headers one byte at a time, while a signed push in parallel is queued', async () => {
    const runsBefore = await runFiles();
    const stalled = Array.from({ length: 4 }, () => {
      const request = github(webPush(ctx));
      return trickle(requestHead(request, `127.0.0.1:${port}`), Buffer.from(request.body ?? ''), 0);
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const normal = github(webPush(ctx));
    await expectQueuedAndRun(await sendRaw(port, normal));
    for (const client of await Promise.all(stalled)) {
      expect([0, 408]).toContain(client.status);
      expect(client.sent).toBeLessThan(client.total);
    }
    expect((await runFiles()).length).toBe(runsBefore.length + 2);
  });

  it('drops a client that sends a correctly signed body one byte at a time, and runs nothing for it', async () => {
    const runsBefore = await runFiles();
    const request = github(webPush(ctx));
    const head = requestHead(request, `127.0.0.1:${port}`);
    const slow = trickle(head, Buffer.from(request.body ?? ''), head.length);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await expectQueuedAndRun(await sendRaw(port, github(webPush(ctx))));
    const client = await slow;
    expect([0, 408]).toContain(client.status);
    expect(client.sent).toBeLessThan(client.total);
    expect((await runFiles()).length).toBe(runsBefore.length + 2);
    expectNoSecretIn(hook.logLines.join('\n'));
  });
});

describe('the whole table', () => {
  it('logged no error and no secret while it ran', () => {
    const errors = hook.logLines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    expect(errors).toEqual([]);
    expectNoSecretIn(hook.logLines.join('\n'));
  });

  it('has at least 50 cases', () => {
    const total = [verification, rotation, limits, parsing, data, paths].reduce((sum, group) => sum + group.length, 0);
    console.log(`adversarial cases: ${total}`);
    expect(total).toBeGreaterThanOrEqual(50);
  });
});
