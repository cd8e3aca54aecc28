import { appendFile, open, rm } from 'node:fs/promises';
import { PREFIX } from './run-log.js';
import { readSpillHeader, SPILL_HEADER_BYTES, spillFiles } from './spill-files.js';

interface Segment {
  path: string;
  /** Where its output starts: after the header. */
  offset: number;
  /** How many bytes of output from there are current. */
  length: number;
  mtimeMs: number;
}

/** What a spill segment holds, with when it was last written; undefined when there is none. */
async function segment(path: string): Promise<Segment | undefined> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) return undefined;
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SPILL_HEADER_BYTES), 0, SPILL_HEADER_BYTES, 0);
    const length = readSpillHeader(buffer.subarray(0, bytesRead));
    // A segment without a header was written by a deployhook that emptied segments before reuse: all of it is current.
    if (length === undefined) return { path, offset: 0, length: stats.size, mtimeMs: stats.mtimeMs };
    return { path, offset: SPILL_HEADER_BYTES, length: Math.min(length, Math.max(0, stats.size - SPILL_HEADER_BYTES)), mtimeMs: stats.mtimeMs };
  } finally {
    await handle.close();
  }
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
 * written last (of two written in the same millisecond, the shorter: a segment taken again
 * starts over at a length of 0); of the other, only the part the newer one has not reached
 * yet is older output still kept. How much of a segment is current is in its header
 * (spill-files.ts): a segment is written over in place, so bytes past that are stale.
 */
export async function closeCrashedLog(logPath: string): Promise<void> {
  const found = (await Promise.all(spillFiles(logPath).map(segment))).filter((entry) => entry !== undefined);
  found.sort((a, b) => a.mtimeMs - b.mtimeMs || b.length - a.length);
  const pieces: Buffer[] = [];
  if (found.length > 0) {
    const current = found[found.length - 1] as NonNullable<(typeof found)[number]>;
    const older = found.length > 1 ? found[0] : undefined;
    pieces.push(Buffer.from(`\n${PREFIX}... output dropped here (past max_log_bytes); the end of it that was kept follows ...\n`));
    if (older) pieces.push(await readRange(older.path, older.offset + current.length, older.offset + older.length));
    pieces.push(await readRange(current.path, current.offset, current.offset + current.length));
  }
  pieces.push(Buffer.from(`\n${PREFIX}the daemon stopped while this run was in progress (killed or crashed); the run is repeated\n`));
  await appendFile(logPath, Buffer.concat(pieces), { mode: 0o640 });
  await Promise.all(spillFiles(logPath).map((path) => rm(path, { force: true })));
}
