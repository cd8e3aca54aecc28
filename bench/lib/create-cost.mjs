// What a new file costs the file system, against appending the same bytes to one open file:
// CPU (user + system) per operation, in rounds of 500 in one fresh folder on the disk a
// state_dir would be on (TMPDIR). A new file per push was how delivery records were kept.
//
//   node bench/lib/create-cost.mjs [--rounds 8] [--dir /var/tmp]
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '8' }, dir: { type: 'string' } } });
const PER_ROUND = 500;
const record = `${JSON.stringify({ key: 'github:42:00000000-0000-4000-8000-000000000000', time: new Date().toISOString(), runs: ['01m8vfvp5tg7mmnb00twnms4xw'] })}\n`;
const folder = mkdtempSync(join(args.dir ?? process.env.BENCH_TMP ?? tmpdir(), 'deployhook-create-'));

function cpuPer(task) {
  const before = process.cpuUsage();
  for (let i = 0; i < PER_ROUND; i++) task(i);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / PER_ROUND;
}

try {
  const log = openSync(join(folder, 'appended.log'), 'a', 0o600);
  const created = [];
  const appended = [];
  for (let round = 0; round < Number(args.rounds); round++) {
    created.push(cpuPer((i) => writeFileSync(join(folder, `${round}-${i}.json`), record, { flag: 'wx', mode: 0o600 })));
    appended.push(cpuPer(() => writeSync(log, record)));
  }
  closeSync(log);
  const show = (values) => values.map((value) => value.toFixed(0)).join(' ');
  console.log(`folder: ${folder}`);
  console.log(`new file, µs of CPU each, per round of ${PER_ROUND}: ${show(created)}`);
  console.log(`append to one file, µs of CPU each:           ${show(appended)}`);
} finally {
  rmSync(folder, { recursive: true, force: true });
}
