import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunRecord } from '../../src/jobs/run-record.js';

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted', 'skipped']);

export async function readRun(stateDir: string, job: string, id: string): Promise<RunRecord> {
  return JSON.parse(await readFile(join(stateDir, 'runs', job, `${id}.json`), 'utf8')) as RunRecord;
}

/** Every run record of a job on disk, oldest first. */
export async function runsOf(stateDir: string, job: string): Promise<RunRecord[]> {
  const names = await readdir(join(stateDir, 'runs', job)).catch(() => [] as string[]);
  const ids = names.filter((name) => /^[0-9a-z]{26}\.json$/.test(name)).sort();
  return Promise.all(ids.map((name) => readRun(stateDir, job, name.slice(0, -'.json'.length))));
}

/** Polls the run's record on disk until it reaches a final status. */
export async function waitForRun(stateDir: string, job: string, id: string, timeoutMs = 20_000): Promise<RunRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = await readRun(stateDir, job, id).catch(() => undefined);
    if (record && FINAL.has(record.status)) return record;
    if (Date.now() > deadline) throw new Error(`run ${id} of ${job} did not finish within ${timeoutMs} ms (status ${record?.status ?? 'unknown'})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
