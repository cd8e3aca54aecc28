// Fixed-rate load with autocannon: POSTs one signed GitHub push body at --rate requests per
// second overall, every request with a new X-GitHub-Delivery id (a header, so the signature
// over the body stays valid). bench/ack-throughput.sh uses it only with
// BENCH_FIXED_TOOL=autocannon; by default it paces wrk instead (lib/signed-push.lua), because
// of three things autocannon 9 does at a fixed rate:
// - it spends each second's budget of requests as fast as its connections allow, then waits
//   for the next second: the load comes in bursts at the start of each second;
// - it corrects the latencies for coordinated omission with
//   `recordValueWithExpectedInterval(latency, Math.ceil(1 / rate))` (lib/run.js), where rate
//   is a connection's requests per second: the interval is 1 ms at any rate, not 1000 / rate
//   ms, so a reply of N ms (2 ms or more) is also recorded as N-1, N-2, ... 1 ms: it weighs
//   as much as N replies;
// - a second's requests its connections could not send are neither sent later nor counted, so
//   a slow server gets fewer of them.
// Prints one line like wrk's script: BENCH rps=... p50_ms=... p99_ms=... max_ms=... requests=... errors=... s200=... s202=... sother=...
//
//   node bench/lib/fixed-rate.mjs --url URL --body FILE --signature sha256=HEX [--rate 1000] [--seconds 10] [--connections 16] [--warmup 2]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    body: { type: 'string' },
    signature: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    warmup: { type: 'string', default: '2' },
  },
});
if (!args.url || !args.body || !args.signature) {
  console.error('usage: fixed-rate.mjs --url URL --body FILE --signature sha256=HEX [--rate N] [--seconds N] [--connections N]');
  process.exit(2);
}

const load = (seconds) => autocannon({
  url: args.url,
  method: 'POST',
  body: readFileSync(args.body),
  headers: {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/bench',
    'x-github-event': 'push',
    'x-github-hook-id': '42',
    'x-hub-signature-256': args.signature,
    'x-github-delivery': 'bench-[<id>]',
  },
  idReplacement: true,
  overallRate: Number(args.rate),
  duration: seconds,
  connections: Number(args.connections),
  timeout: 10,
});
// A fresh server's first requests run cold code (and load what it loads on first use): warm it up unmeasured.
await load(Number(args.warmup));
const result = await load(Number(args.seconds));

const count = (code) => result.statusCodeStats?.[code]?.count ?? 0;
const answered = Object.values(result.statusCodeStats ?? {}).reduce((sum, { count: n }) => sum + n, 0);
const fields = {
  rps: result.requests.average,
  p50_ms: result.latency.p50,
  p99_ms: result.latency.p99,
  max_ms: result.latency.max,
  requests: answered,
  errors: result.errors, // timeouts included
  s200: count(200),
  s202: count(202),
  sother: answered - count(200) - count(202),
};
console.log(`BENCH ${Object.entries(fields).map(([key, value]) => `${key}=${value}`).join(' ')}`);
