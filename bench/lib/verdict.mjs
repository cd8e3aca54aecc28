// The suite's figures against the targets in docs/benchmarks.md, read from the tables the
// benchmarks printed into a results folder (run-all.sh keeps them in bench/results/<time>/ and
// ends with this table). Ratios are worked out from the figures beside them, not read from
// the tables' two-decimal ratio columns (0.797 is printed there as 0.80, and is under 0.8).
// Given several folders (several suites), a figure is the median of the suites' own, followed
// by their range, and a target is met when that median meets it; the burst's promises (every
// push acknowledged, at most 3 runs, the newest commit deployed) are judged by the worst run of
// all. A figure whose table is missing or empty (a benchmark that was not run, or failed when
// run on its own) is "not measured"; one from a benchmark run with other settings than the
// target's (another burst size, rate, job count or output size) is "not comparable". Neither
// is met.
//
//   node bench/lib/verdict.mjs bench/results/<time> [bench/results/<time> ...]
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const folders = process.argv.slice(2);
if (folders.length === 0) {
  console.error('usage: verdict.mjs RESULTS_FOLDER [RESULTS_FOLDER ...]');
  process.exit(2);
}
for (const folder of folders) {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) {
    console.error(`verdict.mjs: ${folder} is not a results folder`);
    process.exit(2);
  }
}

/** The text a benchmark printed into `folder`; empty when it printed nothing there. */
const textOf = (folder, file) => (existsSync(join(folder, file)) ? readFileSync(join(folder, file), 'utf8') : '');

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
 * The cell in `column` (a header's name, or a test of it) of the first row that passes `row`,
 * in the first table of `file` whose header has that column and passes `table`.
 */
function cell(folder, file, { table = () => true, row, column }) {
  const isColumn = typeof column === 'function' ? column : (name) => name === column;
  for (const { header, rows } of tables(textOf(folder, file))) {
    const index = header.findIndex(isColumn);
    if (index === -1 || !table(header)) continue;
    const found = rows.find(row);
    if (found !== undefined) return found[index];
  }
  return undefined;
}

/** The leading number of a cell ("1,111", "210 ms (134, 286)", "2.10"); NaN for none. */
const leading = (text) => (text === undefined ? NaN : Number.parseFloat(text.replace(/,/g, '')));
const ratioOf = (top, bottom) => (Number.isFinite(top) && Number.isFinite(bottom) && bottom > 0 ? top / bottom : NaN);

/** Whether `file`'s first line (the benchmark's title) has `pattern`: the settings it ran with. */
const ranWith = (pattern, file) => (folder) => {
  const text = textOf(folder, file);
  return text === '' || pattern.test(text);
};

const ackRate = (kase) => (folder) => {
  const rate = (server) => leading(cell(folder, 'ack-throughput.txt', { table: (header) => header.includes('deployhook/webhook req/s'), row: ([name, who]) => name.startsWith(kase) && who === server, column: 'req/s' }));
  return ratioOf(rate('deployhook'), rate('webhook'));
};
const ackPaced = (kase) => (folder) => leading(cell(folder, 'ack-throughput.txt', { table: (header) => header.includes('slots dropped'), row: ([name, who]) => name.startsWith(kase) && who === 'deployhook', column: 'p99 ms' }));
const burst = (label) => (folder) => cell(folder, 'burst.txt', { row: ([name]) => name === label, column: 'deployhook' });
/** A burst row's runs: "2, 4" (one figure per run), or a median and each run, "2351 ms (2300, never)". */
function burstRuns(text) {
  if (text === undefined) return [];
  const each = /\(([^)]*)\)$/.exec(text)?.[1] ?? text;
  return each.split(', ').map((run) => (run.trim().startsWith('never') ? Infinity : leading(run)));
}
/** A burst row's worst run (the largest figure; Infinity for never); NaN when the row is missing or unreadable. */
const burstWorst = (label) => (folder) => {
  const runs = burstRuns(burst(label)(folder));
  return runs.length === 0 || runs.some(Number.isNaN) ? NaN : Math.max(...runs);
};
const footprint = (label) => (folder) => leading(cell(folder, 'footprint.txt', { row: ([name]) => name === label, column: 'deployhook' }));
const scaleCell = (label, column) => (folder) => leading(cell(folder, 'scale.txt', { row: ([name]) => name === label, column }));
const manyJobs = (name) => / jobs$/.test(name);
const oneJob = (name) => name === '1 job';

const ratio = (value) => `${value.toFixed(2)}×`;
const ms = (value) => `${value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1)} ms`;
const mb = (value) => `${value.toFixed(1)} MB`;
const count = (value) => String(value);

const settings = {
  ack: ranWith(/^fixed rate, 1000 req\/s /m, 'ack-throughput.txt'),
  burst: ranWith(/^burst: 1000 signed pushes /m, 'burst.txt'),
  capture: ranWith(/^log-capture: 1000000000 bytes /m, 'log-capture.txt'),
  scale: ranWith(/^scale: 5000 jobs /m, 'scale.txt'),
};
const always = () => true;

/** Scale's target for a case of benchmark 1: its rate with many jobs against one job's. */
const scaleRate = (kase, label) => ({
  id: '6',
  what: `many jobs: ${kase} req/s against one job`,
  target: '≥ 0.9×',
  measure: (folder) => ratioOf(scaleCell(label, manyJobs)(folder), scaleCell(label, oneJob)(folder)),
  comparable: settings.scale,
  met: (v) => v >= 0.9,
  show: ratio,
  line: 0.9,
});

/** `across: 'worst'`: judged by the largest figure of all suites (each already its suite's worst run). */
const TARGETS = [
  { id: '1(a)', what: 'pushes no job wants: req/s against webhook', target: '≥ 1.2×', measure: ackRate('(a)'), met: (v) => v >= 1.2, show: ratio, line: 1.2 },
  { id: '1(a)', what: 'the same at 1,000 req/s paced: p99', target: '< 10 ms', measure: ackPaced('(a)'), comparable: settings.ack, met: (v) => v < 10, show: ms },
  { id: '1(b)', what: 'pushes a job wants: req/s against webhook', target: '≥ 1.2×', measure: ackRate('(b)'), met: (v) => v >= 1.2, show: ratio, line: 1.2 },
  { id: '1(b)', what: 'the same at 1,000 req/s paced: p99', target: '< 10 ms', measure: ackPaced('(b)'), comparable: settings.ack, met: (v) => v < 10, show: ms },
  {
    id: '2',
    what: 'burst: pushes not acknowledged (the run with most)',
    target: '0',
    measure: (folder) => {
      // One "acknowledged/sent" per run: "1000/1000, 997/1000".
      const runs = (burst('pushes acknowledged (202 / 200)')(folder) ?? '').split(', ').map((run) => run.split('/').map(Number));
      return runs.some((pair) => pair.length !== 2 || pair.some(Number.isNaN)) ? NaN : Math.max(...runs.map(([acked, sent]) => sent - acked));
    },
    comparable: settings.burst,
    across: 'worst',
    met: (v) => v === 0,
    show: count,
  },
  { id: '2', what: 'burst: acknowledgement p99', target: '< 50 ms', measure: (folder) => leading(burst('ack latency p99')(folder)), comparable: settings.burst, met: (v) => v < 50, show: ms },
  {
    id: '2',
    what: 'burst: runs executed (the run with most)',
    target: '≤ 3',
    measure: burstWorst('deploys run'),
    comparable: settings.burst,
    across: 'worst',
    met: (v) => v <= 3,
    show: count,
  },
  {
    id: '2',
    what: 'burst: newest commit deployed, after the first push (the slowest run)',
    target: 'deployed',
    measure: burstWorst('a deploy of the newest commit done after'),
    comparable: settings.burst,
    across: 'worst',
    met: (v) => Number.isFinite(v),
    show: ms,
  },
  {
    id: '3',
    what: 'push to the command’s first line, against the typical script',
    target: '≤ 1.1×',
    measure: (folder) => {
      const firstLine = (server) => leading(cell(folder, 'push-to-command.txt', { row: ([who]) => server(who), column: 'first line, median ms' }));
      return ratioOf(firstLine((who) => who === 'deployhook'), firstLine((who) => who.endsWith('typical script')));
    },
    met: (v) => v <= 1.1,
    show: ratio,
    line: 1.1,
  },
  {
    id: '4',
    what: '1 GB of output into the run log (default cap), against a redirect',
    target: '≥ 0.8×',
    measure: (folder) => {
      const rate = (how) => leading(cell(folder, 'log-capture.txt', { row: ([name]) => how(name), column: 'MB/s (command)' }));
      return ratioOf(rate((name) => name.startsWith('deployhook') && name.includes('(default)')), rate((name) => name === 'redirected to a file'));
    },
    comparable: settings.capture,
    met: (v) => v >= 0.8,
    show: ratio,
    line: 0.8,
  },
  {
    id: '4',
    what: '`/healthz` p99 meanwhile',
    target: '< 50 ms',
    measure: (folder) => leading(cell(folder, 'log-capture.txt', { table: (header) => header[0] === 'when', row: ([when]) => when.startsWith('during a run'), column: 'p99 ms' })),
    comparable: settings.capture,
    met: (v) => v < 50,
    show: ms,
  },
  { id: '5', what: 'RSS idle', target: '≤ 70 MB', measure: footprint('RSS idle, MB'), met: (v) => v <= 70, show: mb },
  { id: '5', what: 'start to the first accepted push', target: '< 500 ms', measure: footprint('start to first accepted push, ms'), met: (v) => v < 500, show: ms },
  { id: '6', what: 'many jobs: start to the first accepted push', target: '< 2,000 ms', measure: scaleCell('start to first accepted push, ms', manyJobs), comparable: settings.scale, met: (v) => v < 2000, show: ms },
  scaleRate('(a)', '(a) no match, 200, req/s'),
  scaleRate('(b)', '(b) match, 202, req/s'),
];

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length / 2;
  return sorted.length % 2 ? sorted[Math.floor(middle)] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const suites = folders.length === 1 ? `the suite in ${folders[0]}` : `${folders.length} suites (each figure their median, then their range; the burst's promises by the worst run of all)`;
console.log(`targets: ${suites}`);
console.log('| # | figure | target | deployhook | met? |');
console.log('|---|--------|--------|------------|------|');
let metCount = 0;
for (const { id, what, target, measure, comparable = always, across = 'median', met, show, line } of TARGETS) {
  const row = (result, verdict) => console.log(`| ${id} | ${what} | ${target} | ${result} | ${verdict} |`);
  const values = folders.map(measure);
  // Infinity is a figure (a newest commit never deployed, shown as never); NaN is none.
  const missing = values.filter((value) => Number.isNaN(value)).length;
  if (missing > 0) {
    row(`not measured in ${missing} of ${values.length}`, 'no');
    continue;
  }
  const other = folders.filter((folder) => !comparable(folder)).length;
  if (other > 0) {
    row(`ran with other settings in ${other} of ${values.length}`, 'not comparable');
    continue;
  }
  // A ratio that two decimals would round onto its line (0.797 to 0.80) gets a third.
  const shown = (value) => (!Number.isFinite(value) ? 'never' : line !== undefined && value !== line && Number(value.toFixed(2)) === line ? `${value.toFixed(3)}×` : show(value));
  const figure = across === 'worst' ? Math.max(...values) : median(values);
  const [low, high] = [Math.min(...values), Math.max(...values)];
  // "1.7–2.0 ms": the unit once.
  const unit = / [A-Za-z]+$|×$/.exec(shown(high))?.[0] ?? '';
  const from = unit !== '' && shown(low).endsWith(unit) ? shown(low).slice(0, -unit.length) : shown(low);
  const range = values.length === 1 ? '' : low === high ? ` (${shown(low)} in each)` : ` (${from}–${shown(high)})`;
  const ok = met(figure);
  if (ok) metCount += 1;
  row(`${shown(figure)}${range}`, ok ? 'met' : 'missed');
}
console.log(`${metCount} of ${TARGETS.length} met`);
