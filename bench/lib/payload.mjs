// GitHub's own example push to a branch (@octokit/webhooks-examples), with the repository,
// ref and commits set, signed with HMAC-SHA256 over the exact bytes written.
//
//   node bench/lib/payload.mjs --out body.json --repo owner/name --ref refs/heads/main --after SHA
//
// Writes the body to --out and prints the X-Hub-Signature-256 value. The secret is read from
// the variable named by --secret-env (default BENCH_SECRET).
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);

/** The first example push to a branch that is not a deletion: about 8.8 KB pretty-printed. */
export function examplePush() {
  const file = require.resolve('@octokit/webhooks-examples/api.github.com/index.json', { paths: [process.cwd(), new URL('../..', import.meta.url).pathname] });
  const examples = JSON.parse(readFileSync(file, 'utf8'));
  const push = examples.find((entry) => entry.name === 'push')?.examples.find((example) => String(example.ref).startsWith('refs/heads/') && example.deleted === false);
  if (!push) throw new Error('expected a branch push example in @octokit/webhooks-examples');
  return push;
}

/** The example with repository, ref and commit ids replaced; pretty-printed as the example ships. */
export function pushBody(template, { repo, ref, after, before = '0'.repeat(40) }) {
  const payload = structuredClone(template);
  const [owner, name] = repo.split('/');
  payload.repository.full_name = repo;
  payload.repository.name = name;
  payload.repository.owner.login = owner;
  payload.repository.owner.name = owner;
  payload.ref = ref;
  payload.after = after;
  payload.before = before;
  payload.head_commit.id = after;
  if (payload.commits[0]) payload.commits[0].id = after;
  return Buffer.from(JSON.stringify(payload, null, 2));
}

export function signature(secret, body) {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      repo: { type: 'string', default: 'bench/app' },
      ref: { type: 'string', default: 'refs/heads/main' },
      after: { type: 'string' },
      before: { type: 'string' },
      'secret-env': { type: 'string', default: 'BENCH_SECRET' },
    },
  });
  const secret = process.env[values['secret-env']];
  if (!values.out || !values.after || !secret) {
    console.error('usage: payload.mjs --out FILE --after SHA [--repo owner/name] [--ref refs/heads/main] [--before SHA]; the secret in $BENCH_SECRET');
    process.exit(2);
  }
  const body = pushBody(examplePush(), { repo: values.repo, ref: values.ref, after: values.after, ...(values.before ? { before: values.before } : {}) });
  writeFileSync(values.out, body);
  console.log(signature(secret, body));
}
