import type { JobConfig } from '../config/types.js';
import { bitbucketServerProvider } from '../providers/bitbucket-server.js';
import { bitbucketProvider } from '../providers/bitbucket.js';
import type { SignedDelivery } from './push-payload.js';

const ZERO = '0'.repeat(40);
const SENDER = 'deployhook-send';
const MESSAGE = 'sent by deployhook send';

function splitRef(ref: string): { branch: boolean; name: string } {
  const branch = ref.startsWith('refs/heads/');
  return { branch, name: ref.slice(branch ? 'refs/heads/'.length : 'refs/tags/'.length) };
}

/** Bitbucket Cloud's `repo:push` with one change: the ref at `sha`, as if newly created. */
function cloudPayload(job: JobConfig, ref: string, sha: string): object {
  const [workspace = '', slug = ''] = job.repo.split('/');
  const { branch, name } = splitRef(ref);
  return {
    actor: { type: 'user', display_name: SENDER, nickname: SENDER },
    repository: { type: 'repository', full_name: job.repo, name: slug, workspace: { type: 'workspace', slug: workspace }, scm: 'git' },
    push: {
      changes: [{
        new: { type: branch ? 'branch' : 'tag', name, target: { type: 'commit', hash: sha, message: MESSAGE, date: new Date().toISOString() } },
        old: null,
        created: true,
        forced: false,
        closed: false,
        commits: [],
        truncated: false,
      }],
    },
  };
}

/** Bitbucket Data Center's `repo:refs_changed` with one change: the ref added at `sha`. */
function serverPayload(job: JobConfig, ref: string, sha: string): object {
  const [project = '', slug = ''] = job.repo.split('/');
  const { branch, name } = splitRef(ref);
  return {
    eventKey: 'repo:refs_changed',
    date: new Date().toISOString(),
    actor: { name: SENDER, displayName: SENDER, type: 'SERVICE' },
    repository: { slug, name: slug, scmId: 'git', state: 'AVAILABLE', project: { key: project, type: 'NORMAL' } },
    changes: [{ ref: { id: ref, displayId: name, type: branch ? 'BRANCH' : 'TAG' }, refId: ref, fromHash: ZERO, toHash: sha, type: 'ADD' }],
  };
}

/**
 * A push for a Bitbucket Cloud or Data Center job, with the host's event key and request id,
 * signed as the host signs (the adapter's own relay headers, made with the job's secret).
 */
export function bitbucketDelivery(job: JobConfig, ref: string, sha: string, id: string): SignedDelivery {
  const secret = job.secrets[0] ?? '';
  const now = new Date();
  if (job.provider === 'bitbucket-server') {
    const body = JSON.stringify(serverPayload(job, ref, sha));
    const original = { 'x-event-key': 'repo:refs_changed', 'x-request-id': id };
    return { body, headers: { 'user-agent': SENDER, ...bitbucketServerProvider.relayHeaders(Buffer.from(body), secret, original, now) } };
  }
  const body = JSON.stringify(cloudPayload(job, ref, sha));
  const original = { 'x-event-key': 'repo:push', 'x-request-uuid': id };
  return { body, headers: { 'user-agent': SENDER, ...bitbucketProvider.relayHeaders(Buffer.from(body), secret, original, now) } };
}
