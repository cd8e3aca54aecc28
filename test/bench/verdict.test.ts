import { execFile } from 'node:child_process';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const VERDICT = join(REPO_ROOT, 'bench', 'lib', 'verdict.mjs');
/** The tables of three whole suites (`npm run bench`), their per-run lines left out. */
const SUITES = ['20261205T220436Z', '20261205T221320Z', '20261205T222215Z'].map((name) => join(REPO_ROOT, 'test', 'fixtures', 'bench-results', name));

async function verdict(folders: string[]): Promise<{ rows: Map<string, string>; last: string }> {
  const { stdout } = await promisify(execFile)(process.execPath, [VERDICT, ...folders]);
  const lines = stdout.trim().split('\n');
  // Each row as `result | met?`, by its number and figure: `1(b) the same at 1,000 req/s paced: p99`.
  const rows = new Map(
    lines
      .filter((line) => line.startsWith('| ') && !line.startsWith('| # '))
      .map((line) => line.slice(2, -2).split(' | '))
      .map(([id, figure, , result, met]) => [`${id} ${figure}`, `${result} | ${met}`] as const),
  );
  return { rows, last: lines.at(-1) ?? '' };
}

/** A copy of one fixture suite, with `file`'s text changed by `edit`. */
async function editedSuite(file: string, edit: (text: string) => string): Promise<string> {
  const folder = await tempDir();
  await cp(SUITES[2] ?? '', folder, { recursive: true });
  await writeFile(join(folder, file), edit(await readFile(join(folder, file), 'utf8')));
  return folder;
}

describe('bench/lib/verdict.mjs', () => {
  it('reads each target’s figure from three suites’ tables: the median of the suites, their range, met or missed', async () => {
    const { rows, last } = await verdict(SUITES);
    expect(rows.size).toBe(16);
    expect(rows.get('1(a) pushes no job wants: req/s against webhook')).toBe('2.10× (2.03–2.18×) | met');
    expect(rows.get('1(a) the same at 1,000 req/s paced: p99')).toBe('1.8 ms (1.7–2.0 ms) | met');
    expect(rows.get('1(b) pushes a job wants: req/s against webhook')).toBe('1.39× (1.14–1.53×) | met');
    expect(rows.get('1(b) the same at 1,000 req/s paced: p99')).toBe('22.3 ms (14.8–24.8 ms) | missed');
    expect(rows.get('2 burst: acknowledgement p99')).toBe('210 ms (134–286 ms) | missed');
    expect(rows.get('2 burst: runs executed (the run with most)')).toBe('2 (2 in each) | met');
    expect(rows.get('2 burst: newest commit deployed, after the first push')).toBe('2,250 ms (2,232–2,395 ms) | met');
    expect(rows.get('3 push to the command’s first line, against the typical script')).toBe('1.15× (1.14–1.17×) | missed');
    expect(rows.get('4 1 GB of output into the run log (default cap), against a redirect')).toBe('0.77× (0.74–0.78×) | missed');
    expect(rows.get('5 RSS idle')).toBe('64.8 MB (64.8 MB in each) | met');
    expect(rows.get('6 many jobs: start to the first accepted push')).toBe('1,111 ms (1,040–1,219 ms) | met');
    expect(last).toBe('12 of 16 met');
  });

  it('tells (a)’s paced p99 from (b)’s, each from the fixed-rate table rather than the throughput table', async () => {
    const { rows } = await verdict([SUITES[2] ?? '']);
    // That suite's fixed-rate table has (a) 1.952 ms and (b) 24.786 ms; its throughput table 7.519 and 28.528.
    expect(rows.get('1(a) the same at 1,000 req/s paced: p99')).toBe('2.0 ms | met');
    expect(rows.get('1(b) the same at 1,000 req/s paced: p99')).toBe('24.8 ms | missed');
  });

  it('misses the burst’s targets when a run ran too many deploys, left a push unacknowledged or never deployed the newest commit', async () => {
    const folder = await editedSuite('burst.txt', (text) =>
      text
        .replace('| deploys run | 2 |', '| deploys run | 2, 4 |')
        .replace('| pushes acknowledged (202 / 200) | 1000/1000 |', '| pushes acknowledged (202 / 200) | 1000/1000, 997/1000 |')
        .replace('| a deploy of the newest commit done after | 2232 ms |', '| a deploy of the newest commit done after | never |'),
    );
    const { rows, last } = await verdict([folder]);
    expect(rows.get('2 burst: runs executed (the run with most)')).toBe('4 | missed');
    expect(rows.get('2 burst: pushes not acknowledged (the run with most)')).toBe('3 | missed');
    expect(rows.get('2 burst: newest commit deployed, after the first push')).toBe('never | missed');
    expect(last).toBe('9 of 16 met');
  });

  it('says a figure was not measured, and not met, when its benchmark left no table', async () => {
    const folder = await editedSuite('scale.txt', (text) => text);
    await rm(join(folder, 'log-capture.txt'));
    const { rows, last } = await verdict([folder, SUITES[0] ?? '']);
    expect(rows.get('4 1 GB of output into the run log (default cap), against a redirect')).toBe('not measured in 1 of 2 | no');
    expect(rows.get('4 `/healthz` p99 meanwhile')).toBe('not measured in 1 of 2 | no');
    expect(rows.get('5 RSS idle')).toBe('64.8 MB (64.8 MB in each) | met');
    expect(last).toBe('11 of 16 met');
  });

  it('asks for a results folder when given none', async () => {
    const failed = await promisify(execFile)(process.execPath, [VERDICT]).then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed?.code).toBe(2);
    expect(failed?.stderr).toContain('usage: verdict.mjs RESULTS_FOLDER');
  });
});
