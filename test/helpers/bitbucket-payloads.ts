import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

const ZERO = '0'.repeat(40);

function fixture(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`../fixtures/bitbucket/${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

/** `X-Hub-Signature` as both Bitbucket hosts send it, computed here independently of deployhook. */
export function hubSignature(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** One ref update of a Cloud push: `hash` null when the ref was deleted, `old` absent for a new ref. */
export interface CloudChange {
  type?: 'branch' | 'tag';
  name: string;
  hash: string | null;
  old?: string;
  message?: string;
}

/**
 * A Bitbucket Cloud `repo:push` in the documented shape (test/fixtures/bitbucket/repo-push.json):
 * the fixture's one change is the template of each of `changes`.
 */
export function bitbucketPush(repo: string, changes: readonly CloudChange[]): Record<string, unknown> {
  const payload = fixture('repo-push.json');
  const [workspace = '', slug = ''] = repo.split('/');
  const repository = payload.repository as Record<string, Record<string, unknown>>;
  Object.assign(repository, { full_name: repo, name: slug });
  Object.assign(repository.workspace ?? {}, { slug: workspace });
  const push = payload.push as { changes: Array<Record<string, unknown>> };
  const template = push.changes[0] ?? {};
  push.changes = changes.map(({ type = 'branch', name, hash, old, message = 'Update inventory\n' }) => {
    const change = structuredClone(template);
    const state = (sha: string, text: string) => {
      const ref = structuredClone(template.new) as { target: object };
      return { ...ref, type, name, target: { ...ref.target, hash: sha, message: text } };
    };
    change.new = hash === null ? null : state(hash, message);
    change.old = old === undefined ? null : state(old, 'Previous commit\n');
    Object.assign(change, { created: old === undefined, closed: hash === null, commits: hash === null ? [] : [{ hash, type: 'commit', message }] });
    return change;
  });
  return payload;
}

/** The headers Bitbucket Cloud sends; pass the same `request` and a higher `attempt` for a retry. */
export function bitbucketHeaders(body: string, secret: string, options: { event?: string; request?: string; attempt?: number } = {}): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'User-Agent': 'Bitbucket-Webhooks/2.0',
    'X-Event-Key': options.event ?? 'repo:push',
    'X-Hook-UUID': '9dd7e5a5-3b9d-4c8e-9b9a-5f1d6e2c4a10',
    'X-Request-UUID': options.request ?? randomUUID(),
    'X-Attempt-Number': String(options.attempt ?? 1),
    'X-Hub-Signature': hubSignature(body, secret),
  };
}

/** One entry of a Data Center `changes` list. */
export interface ServerChange {
  ref: string;
  toHash: string;
  fromHash?: string;
  type?: 'ADD' | 'UPDATE' | 'DELETE';
}

/**
 * A Bitbucket Data Center `repo:refs_changed` in the documented shape
 * (test/fixtures/bitbucket/refs-changed.json), for `PROJECTKEY/repo-slug`.
 */
export function bitbucketServerPush(repo: string, changes: readonly ServerChange[]): Record<string, unknown> {
  const payload = fixture('refs-changed.json');
  const [project = '', slug = ''] = repo.split('/');
  const repository = payload.repository as Record<string, unknown>;
  Object.assign(repository, { slug, name: slug });
  Object.assign(repository.project as object, { key: project });
  payload.changes = changes.map(({ ref, toHash, fromHash = ZERO, type = fromHash === ZERO ? 'ADD' : 'UPDATE' }) => ({
    ref: { id: ref, displayId: ref.replace(/^refs\/(heads|tags)\//, ''), type: ref.startsWith('refs/tags/') ? 'TAG' : 'BRANCH' },
    refId: ref,
    fromHash,
    toHash,
    type,
  }));
  return payload;
}

/** The body of Data Center's "Test connection" (test/fixtures/bitbucket/diagnostics-ping.json). */
export function diagnosticsPing(): string {
  return readFileSync(new URL('../fixtures/bitbucket/diagnostics-ping.json', import.meta.url), 'utf8');
}

/** The headers Bitbucket Data Center sends. */
export function bitbucketServerHeaders(body: string, secret: string, options: { event?: string; request?: string } = {}): Record<string, string> {
  return {
    'Content-Type': 'application/json; charset=UTF-8',
    'X-Event-Key': options.event ?? 'repo:refs_changed',
    'X-Request-Id': options.request ?? randomUUID(),
    'X-Hub-Signature': hubSignature(body, secret),
  };
}
