import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sign } from '@octokit/webhooks-methods';

const require = createRequire(import.meta.url);

interface Example {
  name: string;
  examples: Array<Record<string, unknown>>;
}

const githubExamples = require('@octokit/webhooks-examples') as Example[];

function githubExample(event: string, pick: (example: Record<string, unknown>) => boolean): Record<string, unknown> {
  const found = githubExamples.find((entry) => entry.name === event)?.examples.find(pick);
  if (!found) throw new Error(`no ${event} example in @octokit/webhooks-examples`);
  return structuredClone(found);
}

export interface PushFields {
  repo: string;
  ref?: string;
  after: string;
  before?: string;
}

/** GitHub's own example push to a branch, with only repository, ref and commit fields changed. */
export function githubPush({ repo, ref = 'refs/heads/main', after, before = '0'.repeat(40) }: PushFields): Record<string, unknown> {
  const payload = githubExample('push', (example) => String(example.ref).startsWith('refs/heads/') && example.deleted === false);
  const [owner = '', name = ''] = repo.split('/');
  const repository = payload.repository as Record<string, unknown>;
  repository.full_name = repo;
  repository.name = name;
  (repository.owner as Record<string, unknown>).login = owner;
  (repository.owner as Record<string, unknown>).name = owner;
  payload.ref = ref;
  payload.after = after;
  payload.before = before;
  (payload.head_commit as Record<string, unknown>).id = after;
  return payload;
}

/** GitHub's own example ping for a repository hook. */
export function githubPing(repo: string): Record<string, unknown> {
  const payload = githubExample('ping', (example) => example.repository !== undefined);
  (payload.repository as Record<string, unknown>).full_name = repo;
  return payload;
}

/** GitHub's own example ping for an organisation's hook: it names no repository. */
export function githubOrganisationPing(): Record<string, unknown> {
  return githubExample('ping', (example) => example.repository === undefined && example.organization !== undefined);
}

/** A push in GitLab's documented shape (test/fixtures/gitlab/push.json). */
export function gitlabPush({ repo, ref = 'refs/heads/main', after, before = '0'.repeat(40) }: PushFields): Record<string, unknown> {
  const payload = JSON.parse(readFileSync(new URL('../fixtures/gitlab/push.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  (payload.project as Record<string, unknown>).path_with_namespace = repo;
  payload.ref = ref;
  payload.after = after;
  payload.checkout_sha = after;
  payload.before = before;
  return payload;
}

let deliveries = 0;

/** Headers GitHub sends with a delivery, signed with `secret` (by @octokit/webhooks-methods, not our code). */
export async function githubHeaders(body: string, secret: string, event = 'push'): Promise<Record<string, string>> {
  deliveries += 1;
  return {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/test',
    'x-github-event': event,
    'x-github-delivery': `00000000-0000-4000-8000-${String(deliveries).padStart(12, '0')}`,
    'x-github-hook-id': '42',
    'x-hub-signature-256': await sign(secret, body),
  };
}

export function gitlabHeaders(token: string, event = 'Push Hook'): Record<string, string> {
  deliveries += 1;
  return {
    'content-type': 'application/json',
    'user-agent': 'GitLab/17.0.0',
    'x-gitlab-event': event,
    'x-gitlab-event-uuid': `11111111-0000-4000-8000-${String(deliveries).padStart(12, '0')}`,
    'x-gitlab-token': token,
  };
}

/** A push in Gitea's documented shape (test/fixtures/gitea/push.json); Forgejo sends the same. */
export function giteaPush({ repo, ref = 'refs/heads/main', after, before = '0'.repeat(40) }: PushFields): Record<string, unknown> {
  const payload = JSON.parse(readFileSync(new URL('../fixtures/gitea/push.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  (payload.repository as Record<string, unknown>).full_name = repo;
  payload.ref = ref;
  payload.after = after;
  payload.before = before;
  (payload.head_commit as Record<string, unknown>).id = after;
  return payload;
}

/** Headers Gitea (or Forgejo) sends: a hex HMAC-SHA256 of the JSON with no prefix, computed here independently. */
export function giteaHeaders(json: string, secret: string, host: 'gitea' | 'forgejo' = 'gitea'): Record<string, string> {
  deliveries += 1;
  const prefix = host === 'gitea' ? 'X-Gitea' : 'X-Forgejo';
  return {
    'content-type': 'application/json',
    [`${prefix}-Event`]: 'push',
    [`${prefix}-Delivery`]: `22222222-0000-4000-8000-${String(deliveries).padStart(12, '0')}`,
    [`${prefix}-Signature`]: createHmac('sha256', secret).update(json).digest('hex'),
  };
}

