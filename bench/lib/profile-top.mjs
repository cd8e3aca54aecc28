// Reads a V8 .cpuprofile (node --cpu-prof) and prints where the time went: the top
// functions by self time, and self time summed per source (a file of src/, a package of
// node_modules, node's internals, the idle loop and the garbage collector); then the top
// functions by total time (their own and their callees'), as a share of the busy time (all
// but idle), to see what a whole step such as starting a process costs. It first lists how
// busy the thread was in each 100 ms of the profile and how much of that was garbage
// collection (the windows busy more than 20 ms), so that a burst can be found; FROM_MS and
// TO_MS (from the profile's start) then limit every table to the samples between them.
//
//   node bench/lib/profile-top.mjs FILE.cpuprofile [TOP] [FROM_MS TO_MS]
import { readFileSync } from 'node:fs';

const [file, topArg = '25', fromArg, toArg] = process.argv.slice(2);
if (!file || (fromArg !== undefined) !== (toArg !== undefined)) {
  console.error('usage: profile-top.mjs FILE.cpuprofile [TOP] [FROM_MS TO_MS]');
  process.exit(2);
}
const top = Number(topArg);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const from = fromArg === undefined ? Number.NEGATIVE_INFINITY : Number(fromArg) * 1000;
const to = toArg === undefined ? Number.POSITIVE_INFINITY : Number(toArg) * 1000;

// Each sample names the node that was on top of the stack; the time until the next sample is its.
const selfMicros = new Map();
const busyPerWindow = new Map();
const gcPerWindow = new Map();
const { samples, timeDeltas } = profile;
const idsNamed = (name) => new Set(profile.nodes.filter((node) => node.callFrame.functionName === name).map((node) => node.id));
const idleIds = idsNamed('(idle)');
const gcIds = idsNamed('(garbage collector)');
let at = 0;
for (let i = 0; i < samples.length; i++) {
  at += timeDeltas[i] ?? 0;
  const delta = timeDeltas[i + 1] ?? 0;
  const window = Math.floor(at / 100_000);
  if (!idleIds.has(samples[i])) busyPerWindow.set(window, (busyPerWindow.get(window) ?? 0) + delta);
  if (gcIds.has(samples[i])) gcPerWindow.set(window, (gcPerWindow.get(window) ?? 0) + delta);
  if (at < from || at >= to) continue;
  selfMicros.set(samples[i], (selfMicros.get(samples[i]) ?? 0) + delta);
}
const total = [...selfMicros.values()].reduce((a, b) => a + b, 0);

function source(url) {
  if (!url) return '(native)';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + 'node_modules/'.length).split('/');
    return `npm:${rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return 'node internals';
  const dist = url.indexOf('/dist/');
  if (dist !== -1) return `src/${url.slice(dist + '/dist/'.length).replace(/\.js$/, '.ts')}`;
  return url.replace(/^file:\/\//, '');
}

const nameOf = (frame) => `${frame.functionName || '(anonymous)'}  ${source(frame.url)}${frame.url ? `:${frame.lineNumber + 1}` : ''}`;

const byFunction = new Map();
const bySource = new Map();
for (const node of profile.nodes) {
  const micros = selfMicros.get(node.id) ?? 0;
  if (micros === 0) continue;
  const frame = node.callFrame;
  const name = nameOf(frame);
  byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  const group = ['(idle)', '(garbage collector)', '(program)'].includes(frame.functionName) ? frame.functionName : source(frame.url);
  bySource.set(group, (bySource.get(group) ?? 0) + micros);
}

const pct = (micros) => `${((100 * micros) / total).toFixed(1).padStart(5)}%`;
const ms = (micros) => `${(micros / 1000).toFixed(0).padStart(7)} ms`;
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled${fromArg === undefined ? '' : ` from ${fromArg} to ${toArg} ms`}`);
console.log('\nbusy per 100 ms (windows busy more than 20 ms; ms from the profile\'s start):');
for (const [window, micros] of [...busyPerWindow].sort((a, b) => a[0] - b[0])) {
  if (micros > 20_000) console.log(`  ${String(window * 100).padStart(7)} ms  ${ms(micros)} busy, ${ms(gcPerWindow.get(window) ?? 0)} of it garbage collection`);
}
console.log('\nself time by source:');
for (const [name, micros] of [...bySource].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(micros)} ${ms(micros)}  ${name}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [name, micros] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(micros)} ${ms(micros)}  ${name}`);

// Total time: each sample counts once for every distinct function on its stack.
const parentOf = new Map();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
const nodeById = new Map(profile.nodes.map((node) => [node.id, node]));
const totals = new Map();
let busy = 0;
for (const [id, micros] of selfMicros) {
  let node = nodeById.get(id);
  if (node.callFrame.functionName === '(idle)') continue;
  busy += micros;
  const seen = new Set();
  for (; node !== undefined; node = parentOf.get(node.id)) {
    if (node.callFrame.functionName === '(root)') continue;
    const name = nameOf(node.callFrame);
    if (seen.has(name)) continue;
    seen.add(name);
    totals.set(name, (totals.get(name) ?? 0) + micros);
  }
}
console.log(`\ntop ${top} functions by total time, as a share of the ${(busy / 1e6).toFixed(2)} s busy:`);
for (const [name, micros] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${((100 * micros) / busy).toFixed(1).padStart(5)}% ${ms(micros)}  ${name}`);
