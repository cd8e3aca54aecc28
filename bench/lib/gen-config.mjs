// Writes a deployhook config with JOBS jobs across JOBS repositories (bench/app-00001, ...),
// each deploying main from the same local remote and running `true`; every secret from the
// one variable BENCH_SECRET. The job for repository bench/app (for the pushes) is the middle one.
//
//   node bench/lib/gen-config.mjs --out FILE --jobs 5000 --port P --dir DIR --remote PATH
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string' },
    jobs: { type: 'string', default: '5000' },
    port: { type: 'string' },
    dir: { type: 'string' },
    remote: { type: 'string' },
  },
});
if (!args.out || !args.port || !args.dir || !args.remote) {
  console.error('usage: gen-config.mjs --out FILE --jobs N --port P --dir DIR --remote PATH');
  process.exit(2);
}
const count = Number(args.jobs);
const target = Math.ceil(count / 2);
const lines = [`listen: "127.0.0.1:${args.port}"`, `state_dir: ${args.dir}/state`, `log_dir: ${args.dir}/log`, 'jobs:'];
for (let i = 1; i <= count; i++) {
  const id = String(i).padStart(5, '0');
  lines.push(
    `  - name: app-${id}`,
    '    provider: github',
    `    repo: ${i === target ? 'bench/app' : `bench/app-${id}`}`,
    '    branches: ["main"]',
    '    secret_env: BENCH_SECRET',
    `    remote: ${args.remote}`,
    '    command: ["true"]',
  );
}
writeFileSync(args.out, `${lines.join('\n')}\n`);
