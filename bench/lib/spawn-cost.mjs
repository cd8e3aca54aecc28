// How long node's spawn() holds the event loop as the process grows: libuv forks the whole
// process to start a child, and the fork copies the page tables of everything resident.
// Grows the process in steps of touched Buffers and times 30 spawns of `true` at each step.
//
//   node bench/lib/spawn-cost.mjs [STEP_MB=50] [STEPS=3]
import { spawn } from 'node:child_process';

const [stepMb = '50', steps = '3'] = process.argv.slice(2);
const kept = [];

async function measure() {
  const times = [];
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    const child = spawn('true');
    times.push(performance.now() - started);
    await new Promise((resolve) => child.on('exit', resolve));
  }
  times.sort((a, b) => a - b);
  const rss = process.memoryUsage().rss / 1e6;
  console.log(`BENCH rss_mb=${rss.toFixed(0)} spawn_median_ms=${times[15].toFixed(2)} spawn_p90_ms=${times[27].toFixed(2)}`);
}

await measure();
for (let step = 0; step < Number(steps); step++) {
  for (let mb = 0; mb < Number(stepMb); mb++) kept.push(Buffer.alloc(1 << 20, 1));
  await measure();
}
