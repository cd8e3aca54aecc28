import { appendFile, open, rm, stat } from 'node:fs/promises';
import { PREFIX } from './run-log.js';
import { spillFiles } from './spill-files.js';

/** What a spill segment holds, with when it was last written; undefined when there is none. */
async function segment(path: string): Promise<{ path: string; size: number; mtimeMs: number } | undefined> {
  const found = await stat(path).catch(() => undefined);
  return found?.isFile() ? { path, size: found.size, mtimeMs: found.mtimeMs } : undefined;
}

async function readRange(path: string, from: number, to: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(Math.max(0, to - from));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * Ends the log of a run the daemon died in (kill -9, a crash, a power cut), which has no
 * closing line: the end of its output that the cap kept aside (the spill segments beside the
 * log, written already masked; see capped-output.ts) is put in after a marker, then a line
 * saying what happened, and the segments are removed. The segment being filled is the one
 * written last (of two written in the same millisecond, the shorter: a segment is emptied
 * when it is taken again, so its size is how much of it is current); of the other, only the
 * part the newer one has not reached yet is older output still kept.
 */
export async function closeCrashedLog(logPath: string): Promise<void> {
  const found = (await Promise.all(spillFiles(logPath).map(segment))).filter((entry) => entry !== undefined);
  found.sort((a, b) => a.mtimeMs - b.mtimeMs || b.size - a.size);
  const pieces: Buffer[] = [];
  if (found.length > 0) {
    const current = found[found.length - 1] as NonNullable<(typeof found)[number]>;
    const older = found.length > 1 ? found[0] : undefined;
    pieces.push(Buffer.from(`\n${PREFIX}... output dropped here (past max_log_bytes); the end of it that was kept follows ...\n`));
    if (older) pieces.push(await readRange(older.path, current.size, older.size));
    pieces.push(await readRange(current.path, 0, current.size));
  }
  pieces.push(Buffer.from(`\n${PREFIX}the daemon stopped while this run was in progress (killed or crashed); the run is repeated\n`));
  await appendFile(logPath, Buffer.concat(pieces), { mode: 0o640 });
  await Promise.all(spillFiles(logPath).map((path) => rm(path, { force: true })));
}
