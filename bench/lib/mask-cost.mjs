// The cost of masking a run log's secrets, in one process: for each number of secrets (random
// 32 hex characters each), masker A against masker B (two builds of src/log/mask-secrets.ts,
// bundled by bench/mask-cost.sh), side by side, twice: making a masker for a new list of
// secrets, masking a 1.3 KB chunk of git-like output (what a run's git and a quiet command
// write), and masking 64 MiB of text and 11 MB of `git log`-like lines (commit ids) in 1 MiB
// chunks. Then one secret of each of four forms (the benchmarks' own, 40 hex characters as
// `openssl rand -hex 20` makes, 44 of base64 as `openssl rand -base64 32` makes, a GitHub token)
// over three texts in 1 MiB chunks: bench/log-capture.sh's line, the text above, the `git log`
// lines: which of a secret's bytes the text lacks decides how fast one secret is looked for.
//
//   BENCH_SECRET=... BENCH_LOG_LINE=... node bench/lib/mask-cost.mjs A.mjs B.mjs [COUNTS]     COUNTS "1,3,20,5000" by default
//   (bench/mask-cost.sh sets both, as bench/lib/common.sh has them)
import { randomBytes } from 'node:crypto';

const [first, second, counts = '1,3,20,5000'] = process.argv.slice(2);
const { BENCH_SECRET: benchSecret, BENCH_LOG_LINE: captureLineText } = process.env;
if (!first || !second || !benchSecret || !captureLineText) {
  console.error('usage: BENCH_SECRET=... BENCH_LOG_LINE=... mask-cost.mjs A.mjs B.mjs [COUNTS]');
  process.exit(2);
}
const builds = [
  ['A', await import(first)],
  ['B', await import(second)],
];
const chunk = Buffer.from('Cloning into x...\nHEAD is now at 123 msg\nsome output line here\n'.repeat(20));
const text = Buffer.alloc(64 << 20, 'lorem ipsum dolor sit amet 0123456789 abcdef\n');
const gitLog = Buffer.from(Array.from({ length: 200_000 }, () => `commit ${randomBytes(20).toString('hex')} deployed\n`).join(''));

const ms = (from) => performance.now() - from;
function inChunks(masker, data) {
  const from = performance.now();
  for (let at = 0; at < data.length; at += 1 << 20) masker.mask(data.subarray(at, at + (1 << 20)));
  return (data.length / 1e6 / (ms(from) / 1000)).toFixed(0);
}

console.log('| secrets | build | new list, ms | 1.3 KB chunk, µs | text, MB/s | git log, MB/s |');
console.log('|---|---|---|---|---|---|');
for (const count of counts.split(',').map(Number)) {
  const secrets = Array.from({ length: count }, () => randomBytes(16).toString('hex'));
  for (let round = 0; round < 2; round += 1) {
    for (const [name, { createMasker }] of builds) {
      let from = performance.now();
      for (let i = 0; i < 5; i += 1) createMasker([...secrets]);
      const made = (ms(from) / 5).toFixed(2);
      const masker = createMasker(secrets);
      from = performance.now();
      for (let i = 0; i < 2000; i += 1) masker.mask(chunk);
      const perChunk = ((ms(from) / 2000) * 1000).toFixed(1);
      console.log(`| ${count} | ${name} | ${made} | ${perChunk} | ${inChunks(masker, text)} | ${inChunks(masker, gitLog)} |`);
    }
  }
}

// One secret by its form (fixed examples, so that runs compare), over three texts.
const forms = [
  ['benchmarks\' (`bench-secret-…`)', benchSecret],
  ['40 hex', 'c8576fc1ffe72895251138ac7aca7ba264c62db7'],
  ['base64', 'w5lNcKm3fg2elDsBWW3Bp3utc+x7iKF/rG1Sd1jbvHs='],
  ['GitHub token', 'ghp_HaAvGxtqmnCpSIHxwdAd8HbRv7nwuKjaUNLS'],
];
const captureLine = Buffer.alloc(64 << 20, `${captureLineText}\n`);
console.log();
console.log('| one secret | build | log-capture.sh\'s line, MB/s | text, MB/s | git log, MB/s |');
console.log('|---|---|---|---|---|');
for (const [form, secret] of forms) {
  for (let round = 0; round < 2; round += 1) {
    for (const [name, { createMasker }] of builds) {
      const masker = createMasker([secret]);
      console.log(`| ${form} | ${name} | ${inChunks(masker, captureLine)} | ${inChunks(masker, text)} | ${inChunks(masker, gitLog)} |`);
    }
  }
}
