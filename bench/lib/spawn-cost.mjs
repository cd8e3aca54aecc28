// How long node's spawn() holds the event loop as the process grows. libuv forks the process
// to start a child and waits until the child has called exec. The fork copies the page tables
// of the process's private memory, except what is marked not to be copied: V8 maps its heap
// with MADV_DONTFORK (`dc` in /proc/PID/smaps), so what a fork copies is the memory outside
// it, malloc's (Buffers' contents, node's and V8's own allocations). Grows the process in steps
// of touched Buffers (`buffers`, the default) or of JavaScript objects (`heap`), and times 30
// spawns of `true` at each step, printing the memory a fork copies beside the resident total.
//
//   node bench/lib/spawn-cost.mjs [STEP_MB=50] [STEPS=3] [buffers|heap]
import { spawn } from 'node:child_process';
import { forkCopiedMb } from './fork-copied.mjs';

const [stepMb = '50', steps = '3', grow = 'buffers'] = process.argv.slice(2);
if (grow !== 'buffers' && grow !== 'heap') throw new Error(`Expected buffers or heap, got ${grow}`);
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
  console.log(`BENCH grow=${grow} rss_mb=${rss.toFixed(0)} fork_copied_mb=${forkCopiedMb().toFixed(0)} spawn_median_ms=${times[15].toFixed(2)} spawn_p90_ms=${times[27].toFixed(2)}`);
}

/** About `mb` MB more of the V8 heap: small objects, each with a string of its own. */
function growHeap(mb) {
  for (let i = 0; i < mb * 8000; i++) kept.push({ n: i, text: `entry ${i} ${'x'.repeat(64)}` });
}

await measure();
for (let step = 0; step < Number(steps); step++) {
  if (grow === 'heap') growHeap(Number(stepMb));
  else for (let mb = 0; mb < Number(stepMb); mb++) kept.push(Buffer.alloc(1 << 20, 1));
  await measure();
}
