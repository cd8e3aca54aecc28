import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunRecord } from '../../src/jobs/run-record.js';
import { decodeSegment } from '../../src/store/journal-frame.js';
import type { RunStore } from '../../src/store/run-store.js';

const FINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'superseded', 'interrupted', 'skipped']);
const SEGMENT = /^\d{16}\.journal$/;

/**
 * The files of `<state>/runs/<job>/` as a restart would find them: what is in place, with
 * the journal's newer changes on top (the daemon acknowledges a change once it is in the
 * journal and puts files in place in batches). Read-only; by file name, `undefined` when gone.
 */
async function durableFiles(stateDir: string, job: string): Promise<Map<string, Buffer | undefined>> {
  const journalDir = join(stateDir, 'journal', 'runs');
  // Journal first: a segment deleted meanwhile has had its changes put in place before.
  const segments = (await readdir(journalDir).catch(() => [] as string[])).filter((name) => SEGMENT.test(name)).sort();
  const journaled = new Map<string, Buffer | undefined>();
  for (const segment of segments) {
    const bytes = await readFile(join(journalDir, segment)).catch(() => undefined);
    if (!bytes) continue;
    for (const entry of decodeSegment(bytes).entries) {
      const [folder, name, ...rest] = entry.path.split('/');
      if (folder !== job || name === undefined || rest.length > 0) continue;
      journaled.set(name, entry.op === 'delete' ? undefined : entry.data);
    }
  }
  const files = new Map<string, Buffer | undefined>();
  const folder = join(stateDir, 'runs', job);
  for (const name of await readdir(folder).catch(() => [] as string[])) {
    const bytes = await readFile(join(folder, name)).catch(() => undefined);
    if (bytes) files.set(name, bytes);
  }
  for (const [name, bytes] of journaled) files.set(name, bytes);
  return files;
}

function parse(bytes: Buffer): RunRecord {
  return JSON.parse(bytes.toString('utf8')) as RunRecord;
}

/** A run's record as a restart would load it; rejects when there is none. */
export async function readRun(stateDir: string, job: string, id: string): Promise<RunRecord> {
  const bytes = (await durableFiles(stateDir, job)).get(`${id}.json`);
  if (!bytes) throw new Error(`no record of run ${id} of ${job} under ${stateDir}`);
  return parse(bytes);
}

/** The names of a job's files (records and payloads) that a restart would find. */
export async function runFiles(stateDir: string, job: string): Promise<string[]> {
  const files = await durableFiles(stateDir, job);
  return [...files.keys()].filter((name) => files.get(name) !== undefined).sort();
}

/** `<job>/<name>` of every file under `<state>/runs/` that a restart would find, all jobs, sorted. */
export async function allRunFiles(stateDir: string): Promise<string[]> {
  const jobs = await readdir(join(stateDir, 'runs')).catch(() => [] as string[]);
  const files = await Promise.all(jobs.map(async (job) => (await runFiles(stateDir, job)).map((name) => `${job}/${name}`)));
  return files.flat().sort();
}

/** Every run record of a job that a restart would load, oldest first. */
export async function runsOf(stateDir: string, job: string): Promise<RunRecord[]> {
  const files = await durableFiles(stateDir, job);
  const names = [...files.keys()].filter((name) => /^[0-9a-z]{26}\.json$/.test(name) && files.get(name) !== undefined).sort();
  return names.map((name) => parse(files.get(name) as Buffer));
}

/** Polls the run's durable record until it reaches a final status. */
export async function waitForRun(stateDir: string, job: string, id: string, timeoutMs = 20_000): Promise<RunRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const record = await readRun(stateDir, job, id).catch(() => undefined);
    if (record && FINAL.has(record.status)) return record;
    if (Date.now() > deadline) throw new Error(`run ${id} of ${job} did not finish within ${timeoutMs} ms (status ${record?.status ?? 'unknown'})`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A new queued run of `job` in `store`, as a push would queue it (not yet created). */
export function queuedRun(store: RunStore, job = 'app'): RunRecord {
  const id = store.newRunId();
  return {
    id,
    job,
    status: 'queued',
    trigger: { type: 'webhook', provider: 'github', delivery: `d-${id}`, pusher: 'alice' },
    repo: 'acme/app',
    ref: 'refs/heads/main',
    branch: 'main',
    sha: 'a'.repeat(40),
    before: '0'.repeat(40),
    queuedAt: new Date().toISOString(),
    logPath: store.logPath(job, id),
    eventFile: store.eventFile(job, id),
  };
}
