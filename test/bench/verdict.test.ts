import { execFile } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const VERDICT = join(REPO_ROOT, 'bench', 'lib', 'verdict.mjs');
/** The kept tables of whole suites (`npm run bench`) at `commit`, their per-run lines left out. */
const suitesAt = (commit: string, names: readonly string[]) => names.map((name) => join(REPO_ROOT, 'test', 'fixtures', 'bench-results', commit, name));
const SUITES = suitesAt('4a7f73a', ['20261205T220436Z', '20261205T221320Z', '20261205T222215Z']);
const LAST = SUITES[2] ?? '';

async function verdict(folders: string[]): Promise<{ stdout: string; rows: Map<string, string>; last: string }> {
  const { stdout } = await promisify(execFile)(process.execPath, [VERDICT, ...folders]);
  const lines = stdout.trim().split('\n');
  // Each row as `result | met?`, by its number and figure: `1(b) the same at 1,000 req/s paced: p99`.
  const rows = new Map(
    lines
      .filter((line) => line.startsWith('| ') && !line.startsWith('| # '))
      .map((line) => line.slice(2, -2).split(' | '))
      .map(([id, figure, , result, met]) => [`${id} ${figure}`, `${result} | ${met}`] as const),
  );
  return { stdout, rows, last: lines.at(-1) ?? '' };
}

/** A copy of the last fixture suite, with `file`'s text changed by `edit`. */
async function editedSuite(file: string, edit: (text: string) => string): Promise<string> {
  const folder = await tempDir();
  await cp(LAST, folder, { recursive: true });
  const text = await readFile(join(folder, file), 'utf8');
  const edited = edit(text);
  expect(edited).not.toBe(text);
  await writeFile(join(folder, file), edited);
  return folder;
}

describe('bench/lib/verdict.mjs', () => {
  it('judges each target by three suites’ figures: their median and range, and the burst’s promises by the worst run', async () => {
    const { stdout } = await verdict(SUITES);
    expect(stdout).toBe(`targets: 3 suites (each figure their median, then their range; the burst's promises by the worst run of all)
| # | figure | target | deployhook | met? |
|---|--------|--------|------------|------|
| 1(a) | pushes no job wants: req/s against webhook | ≥ 1.2× | 2.10× (2.03–2.18×) | met |
| 1(a) | the same at 1,000 req/s paced: p99 | < 10 ms | 1.8 ms (1.7–2.0 ms) | met |
| 1(b) | pushes a job wants: req/s against webhook | ≥ 1.2× | 1.39× (1.14–1.53×) | met |
| 1(b) | the same at 1,000 req/s paced: p99 | < 10 ms | 22.3 ms (14.8–24.8 ms) | missed |
| 2 | burst: pushes not acknowledged (the run with most) | 0 | 0 (0 in each) | met |
| 2 | burst: acknowledgement p99 | < 50 ms | 210 ms (134–286 ms) | missed |
| 2 | burst: runs executed (the run with most) | ≤ 3 | 2 (2 in each) | met |
| 2 | burst: newest commit deployed, after the first push (the slowest run) | deployed | 2,395 ms (2,232–2,395 ms) | met |
| 3 | push to the command’s first line, against the typical script | ≤ 1.1× | 1.15× (1.14–1.17×) | missed |
| 4 | 1 GB of output into the run log (default cap), against a redirect | ≥ 0.8× | 0.77× (0.74–0.78×) | missed |
| 4 | \`/healthz\` p99 meanwhile | < 50 ms | 3.5 ms (3.0–3.7 ms) | met |
| 5 | RSS idle | ≤ 70 MB | 64.8 MB (64.8 MB in each) | met |
| 5 | start to the first accepted push | < 500 ms | 361 ms (351–367 ms) | met |
| 6 | many jobs: start to the first accepted push | < 2,000 ms | 1,111 ms (1,040–1,219 ms) | met |
| 6 | many jobs: (a) req/s against one job | ≥ 0.9× | 1.04× (0.99–1.14×) | met |
| 6 | many jobs: (b) req/s against one job | ≥ 0.9× | 1.03× (0.97–1.19×) | met |
12 of 16 met
`);
  });

  it('gives the figures docs/benchmarks.md summarizes, from the suites whose tables are kept beside them', async () => {
    const kept = suitesAt('ab86276', ['20261206T162121Z', '20261206T163026Z', '20261206T163929Z', '20261206T164851Z', '20261206T165731Z', '20261206T170625Z']);
    const { rows, last } = await verdict(kept);
    const docs = await readFile(join(REPO_ROOT, 'docs', 'benchmarks.md'), 'utf8');
    const summary = docs.slice(docs.indexOf('## Where it stands'), docs.indexOf('## The machine'));
    expect(summary).toContain('`ab86276`');
    expect(summary).toContain(last.replace(' met', ''));
    // Each figure with a range: its median (with the unit) and its range must be the summary's.
    const figures = [...rows.values()].map((row) => /^([\d.,]+)(×| ms| MB) \(([\d.,]+)–([\d.,]+)/.exec(row)).filter((match) => match !== null);
    expect(figures.length).toBeGreaterThanOrEqual(12);
    for (const [, median, unit, low, high] of figures) {
      expect(summary).toContain(`${median}${unit}`);
      expect(summary).toContain(`${low}–${high}`);
    }
  });

  it('reads the paced p99 from the fixed-rate table, not the throughput table beside it', async () => {
    const { rows } = await verdict([LAST]);
    // That suite's fixed-rate table has (a) 1.952 ms and (b) 24.786 ms; its throughput table 7.519 and 28.528.
    expect(rows.get('1(a) the same at 1,000 req/s paced: p99')).toBe('2.0 ms | met');
    expect(rows.get('1(b) the same at 1,000 req/s paced: p99')).toBe('24.8 ms | missed');
  });

  it('works a ratio out from the figures beside it: 376 against 472 MB/s is under 0.8 although the table prints 0.80', async () => {
    const folder = await editedSuite('log-capture.txt', (text) =>
      text.replace('| redirected to a file | 550 |', '| redirected to a file | 472 |').replace('| deployhook, max_log_bytes 100 MiB (default) | 421 |', '| deployhook, max_log_bytes 100 MiB (default) | 376 |').replace(/\| 0\.77 \|$/m, '| 0.80 |'),
    );
    const { rows } = await verdict([folder]);
    expect(rows.get('4 1 GB of output into the run log (default cap), against a redirect')).toBe('0.797× | missed');
  });

  it('misses the burst’s promises when any run deployed too often, left a push unacknowledged or never deployed the newest commit', async () => {
    const folder = await editedSuite('burst.txt', (text) =>
      text
        .replace('| deploys run | 2 |', '| deploys run | 2, 4, 2 |')
        .replace('| pushes acknowledged (202 / 200) | 1000/1000 |', '| pushes acknowledged (202 / 200) | 1000/1000, 997/1000, 1000/1000 |')
        // burst-table.mjs: the median of the runs, then each run's.
        .replace('| a deploy of the newest commit done after | 2232 ms |', '| a deploy of the newest commit done after | 2351 ms (2300, 2351, never) |'),
    );
    const { rows, last } = await verdict([folder, SUITES[0] ?? '']);
    expect(rows.get('2 burst: runs executed (the run with most)')).toBe('4 (2–4) | missed');
    expect(rows.get('2 burst: pushes not acknowledged (the run with most)')).toBe('3 (0–3) | missed');
    expect(rows.get('2 burst: newest commit deployed, after the first push (the slowest run)')).toBe('never (2,250 ms–never) | missed');
    expect(last).toBe('9 of 16 met');
  });

  it('says a figure was not measured when its table is missing or empty, and not comparable when its benchmark ran with other settings', async () => {
    const empty = await editedSuite('log-capture.txt', () => '');
    const smaller = await editedSuite('burst.txt', (text) => text.replace('burst: 1000 signed pushes of 1000 commits', 'burst: 500 signed pushes of 500 commits'));
    const { rows } = await verdict([empty, smaller]);
    expect(rows.get('4 1 GB of output into the run log (default cap), against a redirect')).toBe('not measured in 1 of 2 | no');
    expect(rows.get('4 `/healthz` p99 meanwhile')).toBe('not measured in 1 of 2 | no');
    expect(rows.get('2 burst: acknowledgement p99')).toBe('ran with other settings in 1 of 2 | not comparable');
    expect(rows.get('2 burst: runs executed (the run with most)')).toBe('ran with other settings in 1 of 2 | not comparable');
    expect(rows.get('5 RSS idle')).toBe('64.8 MB (64.8 MB in each) | met');
  });

  it('refuses to judge without a results folder, or with a path that is not one', async () => {
    for (const args of [[], [join(LAST, 'burst.txt')], [join(LAST, 'missing')]]) {
      const failed = await promisify(execFile)(process.execPath, [VERDICT, ...args]).then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).toBe(2);
      expect(failed?.stderr).toMatch(args.length === 0 ? /usage: verdict\.mjs RESULTS_FOLDER/ : /is not a results folder/);
    }
  });
});
