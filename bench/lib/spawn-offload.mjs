// What starting processes costs a busy main thread, by where the start is made. The main
// thread parses a 9 KB JSON document over and over, yielding between batches, for SECONDS,
// while one `true` after another is started, 10 ms apart, and waited for:
//
//   none    no process is started (the main thread's work alone);
//   main    node's spawn() on the main thread, as the daemon starts a run's processes;
//   worker  node's spawn() on a worker thread (worker_threads), told and answered by messages;
//   perl    a small perl process started once, which forks and execs each one and reports its
//           end on a pipe: the main thread only writes a line and reads one.
//
// The process first holds GROW_MB of touched Buffers, as the daemon does under a flood of
// matching pushes (25–38 MB of malloc's memory, which a fork copies). Rounds alternate the four
// ways; printed per way: the main thread's batches relative to `none` in the same round, the
// processes started per second, and the longest the event loop was held (a 1 ms timer's lag).
//
//   node bench/lib/spawn-offload.mjs [ROUNDS=3] [SECONDS=3] [GROW_MB=40]
import { spawn } from 'node:child_process';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';

if (!isMainThread) {
  parentPort.on('message', (id) => {
    const child = spawn('true', [], { detached: true, stdio: 'ignore' });
    child.on('exit', () => parentPort.postMessage(id));
  });
} else {
  const [rounds = '3', seconds = '3', growMb = '40'] = process.argv.slice(2);
  const kept = [];
  for (let mb = 0; mb < Number(growMb); mb++) kept.push(Buffer.alloc(1 << 20, mb));
  const payload = JSON.stringify({ commits: Array.from({ length: 60 }, (_, i) => ({ id: `${i}`.padStart(40, '0'), message: 'x'.repeat(80) })) });

  /** A way to start `true` and wait for its end; `close` ends what the way keeps running. */
  async function starter(way) {
    if (way === 'none') return { start: undefined, close() {} };
    if (way === 'main') {
      return { start: () => new Promise((resolve) => spawn('true', [], { detached: true, stdio: 'ignore' }).on('exit', resolve)), close() {} };
    }
    if (way === 'worker') {
      const worker = new Worker(new URL(import.meta.url));
      await new Promise((resolve) => worker.once('online', resolve));
      const waiting = new Map();
      let next = 0;
      worker.on('message', (id) => {
        waiting.get(id)?.();
        waiting.delete(id);
      });
      const start = () =>
        new Promise((resolve) => {
          waiting.set(next, resolve);
          worker.postMessage(next++);
        });
      return { start, close: () => worker.terminate() };
    }
    const script = '$| = 1; $SIG{PIPE} = "IGNORE"; while (<STDIN>) { my $pid = fork(); if (defined $pid && $pid == 0) { POSIX::setsid(); exec("true"); POSIX::_exit(127) } waitpid($pid, 0); print "$?\\n" }';
    const perl = spawn('perl', ['-MPOSIX', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const waiting = [];
    let partial = '';
    perl.stdout.on('data', (chunk) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop();
      for (const _ of lines) waiting.shift()?.();
    });
    const start = () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        perl.stdin.write('start\n');
      });
    return { start, close: () => perl.stdin.end() };
  }

  async function measure(way) {
    const { start, close } = await starter(way);
    let maxLagMs = 0;
    let last = performance.now();
    const lag = setInterval(() => {
      const now = performance.now();
      maxLagMs = Math.max(maxLagMs, now - last - 1);
      last = now;
    }, 1);
    const end = performance.now() + Number(seconds) * 1000;
    let started = 0;
    const starting = (async () => {
      while (start && performance.now() < end) {
        await start();
        started++;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    let batches = 0;
    while (performance.now() < end) {
      for (let i = 0; i < 50; i++) JSON.parse(payload);
      batches++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await starting;
    clearInterval(lag);
    await close();
    return { batches, perSecond: started / Number(seconds), maxLagMs };
  }

  const ways = ['none', 'main', 'worker', 'perl'];
  const results = Object.fromEntries(ways.map((way) => [way, []]));
  for (let round = 0; round < Number(rounds); round++) {
    const measured = {};
    for (const way of ways) measured[way] = await measure(way);
    for (const way of ways) {
      const { batches, perSecond, maxLagMs } = measured[way];
      results[way].push({ share: batches / measured.none.batches, perSecond, maxLagMs });
      console.log(`BENCH round=${round + 1} way=${way} batches=${batches} share=${(batches / measured.none.batches).toFixed(2)} starts_per_s=${perSecond.toFixed(0)} max_lag_ms=${maxLagMs.toFixed(1)}`);
    }
  }
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  console.log(`\nRSS at the end ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB; medians of ${rounds} rounds of ${seconds} s`);
  console.log("| way | main thread's work, × none (each round) | starts per s | longest hold of the event loop, ms |");
  console.log('| --- | --- | --- | --- |');
  for (const way of ways) {
    const rows = results[way];
    console.log(`| ${way} | ${median(rows.map((r) => r.share)).toFixed(2)} (${rows.map((r) => r.share.toFixed(2)).join(', ')}) | ${median(rows.map((r) => r.perSecond)).toFixed(0)} | ${median(rows.map((r) => r.maxLagMs)).toFixed(1)} |`);
  }
}
