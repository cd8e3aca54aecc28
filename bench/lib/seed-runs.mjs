// Writes finished run records into a state folder, as a daemon that has deployed for a while
// leaves them: RUNS records for each job app-00001 ... app-<JOBS> (gen-config.mjs's names),
// every third one failed, ids in time order. The daemon loads them at start.
//
//   node bench/lib/seed-runs.mjs --state DIR --jobs 2000 --runs 20
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { monotonicFactory } from 'ulid';

const { values: args } = parseArgs({ options: { state: { type: 'string' }, jobs: { type: 'string' }, runs: { type: 'string' } } });
if (!args.state || !args.jobs || !args.runs) {
  console.error('usage: seed-runs.mjs --state DIR --jobs N --runs M');
  process.exit(2);
}
const ulid = monotonicFactory();
const start = Date.now() - 30 * 24 * 3600 * 1000;
const sha = 'a'.repeat(40);
for (let j = 1; j <= Number(args.jobs); j++) {
  const job = `app-${String(j).padStart(5, '0')}`;
  const folder = join(args.state, 'runs', job);
  mkdirSync(folder, { recursive: true });
  for (let r = 0; r < Number(args.runs); r++) {
    const at = start + (j * Number(args.runs) + r) * 1000;
    const id = ulid(at).toLowerCase();
    const failed = r % 3 === 2;
    const record = {
      id, job, status: failed ? 'failed' : 'succeeded',
      trigger: { type: 'webhook', provider: 'github', delivery: `d-${id}`, pusher: 'bench' },
      repo: `bench/${job}`, ref: 'refs/heads/main', branch: 'main', sha, before: '0'.repeat(40),
      queuedAt: new Date(at).toISOString(), startedAt: new Date(at).toISOString(),
      deployedSha: sha, finishedAt: new Date(at + 1000).toISOString(), durationMs: 1000,
      exitCode: failed ? 1 : 0, signal: null, logPath: 'x', eventFile: 'x',
    };
    writeFileSync(join(folder, `${id}.json`), `${JSON.stringify(record)}\n`);
    writeFileSync(join(folder, `${id}.event.json`), '{}\n');
  }
}
