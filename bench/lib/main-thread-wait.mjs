// What a paced load's latency waits for, from inside the daemon. Loaded with `--import`
// (through BENCH_NODE_FLAGS), it records every 100 ms the main thread's time on a CPU and its
// time runnable but waiting for one (/proc/self/task/<pid>/schedstat), and the event loop's
// worst delay (monitorEventLoopDelay at 1 ms); with MAIN_THREAD_REQUESTS=1 also each request's
// time from its headers parsed to its reply finished (node:diagnostics_channel), which costs
// a little per request. At exit it writes /tmp/main-thread-wait.PID.json. Run as a script, it
// summarises such a file over the requests' last N (5,000 by default: the paced part of
// ack-throughput.sh after its warm-up) or, without requests, over the whole load.
//
//   BENCH_RUNS=1 BENCH_CASES=b BENCH_PARTS=fixed BENCH_FIXED_SERVERS=deployhook \
//     BENCH_NODE_FLAGS="--import $PWD/bench/lib/main-thread-wait.mjs" bash bench/ack-throughput.sh
//   node bench/lib/main-thread-wait.mjs /tmp/main-thread-wait.*.json
import dc from 'node:diagnostics_channel';
import { readFileSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';

const asScript = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;

if (asScript) report(process.argv.slice(2));
else if (isMainThread) record();

function record() {
  const started = performance.now();
  // The same moment on the wall clock, to line the requests up with the daemon's log lines (their `time`).
  const startedAt = Date.now();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const schedstat = () => readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number);
  let last = schedstat();
  // [ms since start, on a CPU ms, waiting for a CPU ms, worst event-loop delay ms]
  const windows = [];
  setInterval(() => {
    const now = schedstat();
    windows.push([Math.round(performance.now() - started), (now[0] - last[0]) / 1e6, (now[1] - last[1]) / 1e6, delay.max / 1e6]);
    last = now;
    delay.reset();
  }, 100).unref();
  // [ms since start when the headers were parsed, ms to the reply's end]
  const requests = [];
  if (process.env.MAIN_THREAD_REQUESTS === '1') {
    const begun = new WeakMap();
    dc.subscribe('http.server.request.start', ({ request }) => begun.set(request, performance.now()));
    dc.subscribe('http.server.response.finish', ({ request }) => {
      const at = begun.get(request);
      if (at !== undefined) requests.push([Math.round(at - started), performance.now() - at]);
    });
  }
  process.on('exit', () => writeFileSync(`/tmp/main-thread-wait.${process.pid}.json`, JSON.stringify({ startedAt, windows, requests })));
}

function report(files) {
  const last = Number(process.env.MAIN_THREAD_LAST ?? 5000);
  for (const file of files) {
    const { windows, requests } = JSON.parse(readFileSync(file, 'utf8'));
    const tail = requests.slice(-last);
    // The load's stretch: the requests' if they were recorded, else every window with work in it.
    const from = tail.length > 0 ? tail[0][0] : 0;
    const to = tail.length > 0 ? tail[tail.length - 1][0] + 100 : Infinity;
    const busy = windows.filter(([at, cpu]) => at >= from && at <= to && (tail.length > 0 || cpu > 10));
    const sum = (index) => busy.reduce((total, window) => total + window[index], 0);
    const per100 = (index) => (busy.length > 0 ? (sum(index) / busy.length).toFixed(1) : 'n/a');
    const worst = busy.map((window) => window[3]).sort((a, b) => a - b);
    console.log(`${file}: ${busy.length} windows of 100 ms`);
    console.log(`  main thread per 100 ms: on a CPU ${per100(1)} ms, waiting for one ${per100(2)} ms (most ${Math.max(0, ...busy.map((window) => window[2])).toFixed(1)})`);
    console.log(`  worst event-loop delay per window: median ${quantile(worst, 0.5)} ms, over 5 ms in ${worst.filter((ms) => ms > 5).length}, over 10 ms in ${worst.filter((ms) => ms > 10).length}`);
    if (tail.length > 0) {
      const times = tail.map(([, ms]) => ms).sort((a, b) => a - b);
      console.log(`  ${times.length} requests, headers to reply: p50 ${quantile(times, 0.5)} ms, p99 ${quantile(times, 0.99)} ms, most ${quantile(times, 1)} ms`);
    }
  }
}

function quantile(sorted, q) {
  if (sorted.length === 0) return 'n/a';
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(1);
}
