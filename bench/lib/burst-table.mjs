// Prints burst.sh's table from the JSON lines burst.mjs wrote (one per server and run).
//
//   node bench/lib/burst-table.mjs RESULTS COUNT DEPLOY_SECONDS
import { readFileSync } from 'node:fs';

const [file, count, deploySeconds] = process.argv.slice(2);
const all = readFileSync(file, 'utf8').split('\n').map((line) => line.trim()).filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
/** One server's results of its first burst since it started, or (2) of its next one. */
const of = (server, burst = 1) => all.filter((r) => r.server === server && (r.burst ?? 1) === burst);
const ms = (x) => (x === null || x === undefined ? 'never' : `${Math.round(x)} ms`);

/** The median over runs (a run where it never happened counts as never), then each run's value. */
function timing(values) {
  const sorted = values.map((v) => (v === null || v === undefined ? Infinity : v)).sort((a, b) => a - b);
  const middle = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
  const median = Number.isFinite(middle) ? ms(middle) : 'never';
  return values.length > 1 ? `${median} (${values.map((v) => (v === null || v === undefined ? 'never' : Math.round(v))).join(', ')})` : median;
}
const each = (f) => (rs) => rs.map(f).join(', ');
const seconds = (x) => (x === null || x === undefined ? '-' : `${x.toFixed(2)} s`);

const rows = [
  ['pushes acknowledged (202 / 200)', each((r) => `${r.acknowledged}/${r.pushes}`)],
  ['last push written after', (rs) => timing(rs.map((r) => r.sentInMs))],
  ['ack latency p50', (rs) => timing(rs.map((r) => r.ackP50Ms))],
  ['ack latency p99', (rs) => timing(rs.map((r) => r.ackP99Ms))],
  ['  of which from the request written: p50 / p99', each((r) => (r.fromWriteP99Ms === undefined ? '-' : `${Math.round(r.fromWriteP50Ms)} / ${Math.round(r.fromWriteP99Ms)} ms`))],
  ['  waiting for main to move, p99', each((r) => (r.mainWaitP99Ms === undefined ? '-' : `${Math.round(r.mainWaitP99Ms)} ms`))],
  ['all acknowledged after', (rs) => timing(rs.map((r) => r.allAckedMs))],
  ['CPU until then: the server (all its threads; not its deploys)', each((r) => seconds(r.serverCpuS))],
  ['  its main thread (deployhook: the event loop)', each((r) => seconds(r.serverMainCpuS))],
  ['  the sender (the same 2 cores)', each((r) => seconds(r.senderCpuS))],
  ['deploys run', each((r) => r.runsExecuted ?? r.deploysStarted)],
  // A burst that did not settle within burst.mjs's timeout has no counts of how its runs ended.
  ['  succeeded / failed', each((r) => (!r.settled ? 'not settled' : r.server === 'deployhook' ? `${r.runStatuses.succeeded ?? 0} / ${(r.runStatuses.failed ?? 0) + (r.runStatuses.timed_out ?? 0)}` : `${r.deploysSucceeded} / ${r.deploysFailed}`))],
  ['  superseded (recorded, not run; since deleted beyond keep_runs)', each((r) => (r.server === 'deployhook' && r.settled ? String(r.runStatuses.superseded ?? 0) : '-'))],
  ['most deploys at once', each((r) => r.maxAtOnce)],
  ['checkout ends at the newest commit', each((r) => (r.finalHeadCommit === r.newestCommit ? 'yes' : `no (commit ${r.finalHeadCommit})`))],
  ['HEAD at the newest commit (for good) after', (rs) => timing(rs.map((r) => r.headAtNewestMs))],
  ['a deploy of the newest commit done after', (rs) => timing(rs.map((r) => r.newestDeployedDoneMs))],
  ['idle (last deploy ended) after', (rs) => timing(rs.map((r) => r.idleMs))],
  ['HEAD moved', each((r) => `${r.headChanges}x`)],
];
const runs = of('deployhook').length;
// A column per server and burst that ran (BENCH_SERVERS=deployhook: no webhook; BENCH_BURST_TWICE:
// each server's next burst, once it was idle again).
const columns = [
  ['deployhook', of('deployhook')],
  ['deployhook, its next burst', of('deployhook', 2)],
  ['adnanh/webhook + typical script', of('webhook')],
  ['webhook, its next burst', of('webhook', 2)],
].filter(([, rs]) => rs.length > 0);
console.log(`\nburst: ${count} signed pushes of ${count} commits to one job, paced over about 1 s (open loop, 64 keep-alive sockets); deploy.sh sleeps ${deploySeconds}s; times from the first push; ${runs} run(s) each: median (each run)`);
console.log(`| |${columns.map(([name]) => ` ${name} |`).join('')}`);
console.log(`|---|${columns.map(() => '---|').join('')}`);
for (const [label, f] of rows) console.log(`| ${label} |${columns.map(([, rs]) => ` ${f(rs)} |`).join('')}`);
const failures = all.filter((r) => r.server === 'deployhook').flatMap((r) => (r.failures ?? []).map((failure) => ((r.burst ?? 1) > 1 ? `${failure} (its next burst)` : failure)));
if (failures.length > 0) console.log(`\ndeployhook runs that failed: ${failures.join('; ')}`);
console.log('\nper run:');
for (const r of all) console.log(`  ${JSON.stringify(r)}`);
