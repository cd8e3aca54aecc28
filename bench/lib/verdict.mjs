// The suite's figures against the targets in docs/benchmarks.md, read from the tables the
// benchmarks printed into a results folder (run-all.sh keeps them in bench/results/<time>/ and
// ends with this table). Given several folders (several suites), each figure is the median of
// the suites' own, followed by their range, and a target is met when that median meets it. A
// figure whose table is missing or unreadable (a benchmark that failed or was not run) is
// "not measured" and meets nothing.
//
//   node bench/lib/verdict.mjs bench/results/<time> [bench/results/<time> ...]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const folders = process.argv.slice(2);
if (folders.length === 0) {
  console.error('usage: verdict.mjs RESULTS_FOLDER [RESULTS_FOLDER ...]');
  process.exit(2);
}

/** Every markdown table in `text`: its header cells and its rows' cells. */
function tables(text) {
  const found = [];
  let current;
  for (const line of text.split('\n')) {
    if (!line.startsWith('|')) {
      current = undefined;
      continue;
    }
    const cells = line.replace(/^\|/, '').replace(/\|$/, '').split('|').map((cell) => cell.trim());
    if (current === undefined) found.push((current = { header: cells, rows: [] }));
    else if (!cells.every((cell) => /^-*$/.test(cell))) current.rows.push(cells);
  }
  return found;
}

/**
 * The cell in `column` (a header's name, or a test of it) of the first row whose leading cells
 * pass `row`, in the first table of `file` whose header has that column and passes `table`.
 */
function cell(folder, file, { table = () => true, row, column }) {
  const path = join(folder, file);
  if (!existsSync(path)) return undefined;
  const isColumn = typeof column === 'function' ? column : (name) => name === column;
  for (const { header, rows } of tables(readFileSync(path, 'utf8'))) {
    const index = header.findIndex(isColumn);
    if (index === -1 || !table(header)) continue;
    const found = rows.find(row);
    if (found !== undefined) return found[index];
  }
  return undefined;
}

/** The leading number of a cell ("1,111", "210 ms (134, 286)", "2.10"); NaN for none ("never"). */
const leading = (text) => (text === undefined ? NaN : Number.parseFloat(text.replace(/,/g, '')));

const ack = (kase, part) => (folder) =>
  leading(
    part === 'rate'
      ? cell(folder, 'ack-throughput.txt', { row: ([name, server]) => name.startsWith(kase) && server === 'deployhook', column: 'deployhook/webhook req/s' })
      : cell(folder, 'ack-throughput.txt', { table: (header) => header.includes('slots dropped'), row: ([name, server]) => name.startsWith(kase) && server === 'deployhook', column: 'p99 ms' }),
  );
const burst = (label) => (folder) => cell(folder, 'burst.txt', { row: ([name]) => name === label, column: 'deployhook' });
/** The worst of a burst row's runs ("2, 3, 2"): the most deploys, the fewest pushes acknowledged. */
const burstRuns = (text) => (text === undefined ? [] : text.split(', '));
const footprint = (label) => (folder) => leading(cell(folder, 'footprint.txt', { row: ([name]) => name === label, column: 'deployhook' }));
const scale = (label, column) => (folder) => leading(cell(folder, 'scale.txt', { row: ([name]) => name === label, column }));

const ratio = (value) => `${value.toFixed(2)}×`;
const ms = (value) => `${value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)} ms`;
const mb = (value) => `${value.toFixed(1)} MB`;
const count = (value) => String(value);

const TARGETS = [
  { id: '1(a)', what: 'pushes no job wants: req/s against webhook', target: '≥ 1.2×', measure: ack('(a)', 'rate'), met: (v) => v >= 1.2, show: ratio },
  { id: '1(a)', what: 'the same at 1,000 req/s paced: p99', target: '< 10 ms', measure: ack('(a)', 'p99'), met: (v) => v < 10, show: ms },
  { id: '1(b)', what: 'pushes a job wants: req/s against webhook', target: '≥ 1.2×', measure: ack('(b)', 'rate'), met: (v) => v >= 1.2, show: ratio },
  { id: '1(b)', what: 'the same at 1,000 req/s paced: p99', target: '< 10 ms', measure: ack('(b)', 'p99'), met: (v) => v < 10, show: ms },
  {
    id: '2',
    what: 'burst: pushes not acknowledged (the run with most)',
    target: '0',
    measure: (folder) => {
      const runs = burstRuns(burst('pushes acknowledged (202 / 200)')(folder)).map((run) => run.split('/').map(Number));
      return runs.length === 0 || runs.some((pair) => pair.length !== 2 || pair.some(Number.isNaN)) ? NaN : Math.max(...runs.map(([acked, sent]) => sent - acked));
    },
    met: (v) => v === 0,
    show: count,
  },
  { id: '2', what: 'burst: acknowledgement p99', target: '< 50 ms', measure: (folder) => leading(burst('ack latency p99')(folder)), met: (v) => v < 50, show: ms },
  {
    id: '2',
    what: 'burst: runs executed (the run with most)',
    target: '≤ 3',
    measure: (folder) => {
      const runs = burstRuns(burst('deploys run')(folder)).map(Number);
      return runs.length === 0 || runs.some(Number.isNaN) ? NaN : Math.max(...runs);
    },
    met: (v) => v <= 3,
    show: count,
  },
  {
    id: '2',
    what: 'burst: newest commit deployed, after the first push',
    target: 'deployed',
    measure: (folder) => {
      const text = burst('a deploy of the newest commit done after')(folder);
      return text?.startsWith('never') ? Infinity : leading(text);
    },
    met: (v) => Number.isFinite(v),
    show: ms,
  },
  {
    id: '3',
    what: 'push to the command’s first line, against the typical script',
    target: '≤ 1.1×',
    measure: (folder) => leading(cell(folder, 'push-to-command.txt', { row: ([server]) => server.endsWith('typical script'), column: 'deployhook/this' })),
    met: (v) => v <= 1.1,
    show: ratio,
  },
  {
    id: '4',
    what: '1 GB of output into the run log (default cap), against a redirect',
    target: '≥ 0.8×',
    measure: (folder) => leading(cell(folder, 'log-capture.txt', { row: ([how]) => how.startsWith('deployhook') && how.includes('(default)'), column: 'vs direct' })),
    met: (v) => v >= 0.8,
    show: ratio,
  },
  {
    id: '4',
    what: '`/healthz` p99 meanwhile',
    target: '< 50 ms',
    measure: (folder) => leading(cell(folder, 'log-capture.txt', { table: (header) => header[0] === 'when', row: ([when]) => when.startsWith('during a run'), column: 'p99 ms' })),
    met: (v) => v < 50,
    show: ms,
  },
  { id: '5', what: 'RSS idle', target: '≤ 70 MB', measure: footprint('RSS idle, MB'), met: (v) => v <= 70, show: mb },
  { id: '5', what: 'start to the first accepted push', target: '< 500 ms', measure: footprint('start to first accepted push, ms'), met: (v) => v < 500, show: ms },
  { id: '6', what: 'many jobs: start to the first accepted push', target: '< 2,000 ms', measure: scale('start to first accepted push, ms', (name) => / jobs$/.test(name)), met: (v) => v < 2000, show: ms },
  { id: '6', what: 'many jobs: (a) req/s against one job', target: '≥ 0.9×', measure: scale('(a) no match, 200, req/s', (name) => name.endsWith('/ 1 job')), met: (v) => v >= 0.9, show: ratio },
  { id: '6', what: 'many jobs: (b) req/s against one job', target: '≥ 0.9×', measure: scale('(b) match, 202, req/s', (name) => name.endsWith('/ 1 job')), met: (v) => v >= 0.9, show: ratio },
];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const suites = folders.length === 1 ? `the suite in ${folders[0]}` : `${folders.length} suites (each figure their median, then their range)`;
console.log(`targets: ${suites}`);
console.log('| # | figure | target | deployhook | met? |');
console.log('|---|--------|--------|------------|------|');
let metCount = 0;
for (const { id, what, target, measure, met, show } of TARGETS) {
  const values = folders.map(measure);
  // A newest commit never deployed is a figure (Infinity, shown as never); NaN is none.
  const measured = values.filter((value) => !Number.isNaN(value));
  if (measured.length < values.length) {
    console.log(`| ${id} | ${what} | ${target} | not measured in ${values.length - measured.length} of ${values.length} | no |`);
    continue;
  }
  const middle = median(values);
  const shown = (value) => (Number.isFinite(value) ? show(value) : 'never');
  const [low, high] = [Math.min(...values), Math.max(...values)];
  // "1.7–2.0 ms": the unit once.
  const unit = / [A-Z]*[a-z]+$|×$/.exec(shown(high))?.[0] ?? '';
  const from = unit !== '' && shown(low).endsWith(unit) ? shown(low).slice(0, -unit.length) : shown(low);
  const range = values.length === 1 ? '' : low === high ? ` (${shown(low)} in each)` : ` (${from}–${shown(high)})`;
  const ok = met(middle);
  if (ok) metCount += 1;
  console.log(`| ${id} | ${what} | ${target} | ${shown(middle)}${range} | ${ok ? 'met' : 'missed'} |`);
}
console.log(`${metCount} of ${TARGETS.length} met`);
