// Loaded into the daemon with `--import` (through BENCH_NODE_FLAGS): times every spawn() of
// the process and, every 2 s, appends to /tmp/spawn-watch.PID.txt how many spawns there were,
// their median time holding the event loop, the resident memory and the part a fork copies
// (see fork-copied.mjs). Worker threads load it too and write nothing.
//
//   BENCH_NODE_FLAGS="--import $PWD/bench/lib/spawn-watch.mjs" BENCH_CASES=b bash bench/ack-throughput.sh
import childProcess from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { forkCopiedMb } from './fork-copied.mjs';

const out = `/tmp/spawn-watch.${process.pid}.txt`;
const original = childProcess.spawn;
const times = [];
childProcess.spawn = function timedSpawn(...args) {
  const started = performance.now();
  try {
    return original.apply(this, args);
  } finally {
    times.push(performance.now() - started);
  }
};
syncBuiltinESMExports();

if (isMainThread) {
  setInterval(() => {
    const sorted = times.splice(0).sort((a, b) => a - b);
    const median = sorted.length > 0 ? sorted[Math.floor(sorted.length / 2)].toFixed(2) : 'n/a';
    const rss = process.memoryUsage().rss / 1e6;
    appendFileSync(out, `${new Date().toISOString()} spawns=${sorted.length} spawn_median_ms=${median} rss_mb=${rss.toFixed(0)} fork_copied_mb=${forkCopiedMb().toFixed(1)}\n`);
  }, 2000).unref();
}
