import { constants } from 'node:fs';
import { appendFile, lstat, open, rm, type FileHandle } from 'node:fs/promises';
import { PREFIX } from './run-log.js';
import { readSpillHeader, SPILL_HEADER_BYTES, spillFiles } from './spill-files.js';

interface Segment {
  handle: FileHandle;
  /** Where its output starts: after the header. */
  offset: number;
  /** How many bytes of output from there are current. */
  length: number;
  /** The turn it holds, from its header; undefined for a segment without one. */
  turn: number | undefined;
  mtimeMs: number;
}

/**
 * What a spill segment holds, with when it was last written, and the segment open to read it
 * (the caller closes it); undefined when there is none. Only a plain file is opened: commands
 * can write in the log folder, and opening a FIFO put there under a segment's name would wait
 * for a writer forever.
 */
async function segment(path: string): Promise<Segment | undefined> {
  if (!(await lstat(path).catch(() => undefined))?.isFile()) return undefined;
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      await handle.close();
      return undefined;
    }
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SPILL_HEADER_BYTES), 0, SPILL_HEADER_BYTES, 0);
    const header = readSpillHeader(buffer.subarray(0, bytesRead));
    // A segment without a header was written by a deployhook that emptied segments before reuse: all of it is current.
    if (header === undefined) return { handle, offset: 0, length: stats.size, turn: undefined, mtimeMs: stats.mtimeMs };
    const length = Math.min(header.length, Math.max(0, stats.size - SPILL_HEADER_BYTES));
    return { handle, offset: SPILL_HEADER_BYTES, length, turn: header.turn, mtimeMs: stats.mtimeMs };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function readRange(handle: FileHandle, from: number, to: number): Promise<Buffer> {
  const buffer = Buffer.alloc(Math.max(0, to - from));
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
  return buffer.subarray(0, bytesRead);
}

/**
 * Ends the log of a run the daemon died in (kill -9, a crash, a power cut), which has no
 * closing line: the end of its output that the cap kept aside (the spill segments beside the
 * log, written already masked; see capped-output.ts) is put in after a marker, then a line
 * saying what happened, and the segments are removed. The segment being filled is the one of
 * the later turn (its header says; for segments without a header, from a version that emptied
 * them, the one written last, and of two written in the same millisecond the shorter); of the
 * other, only the part the newer one has not reached yet is older output still kept. How much
 * of a segment is current is in its header too: a segment is written over in place, so bytes
 * past that are from an earlier turn. The header is written after the bytes it counts but not
 * synced: after a power cut, bytes of an earlier turn of the same run (masked like the rest)
 * can show where newer ones did not reach the disk.
 */
export async function closeCrashedLog(logPath: string): Promise<void> {
  const found: Segment[] = [];
  const pieces: Buffer[] = [];
  try {
    for (const path of spillFiles(logPath)) {
      const entry = await segment(path);
      if (entry) found.push(entry);
    }
    const byTurn = found.every((entry) => entry.turn !== undefined);
    found.sort((a, b) => (byTurn ? (a.turn as number) - (b.turn as number) : a.mtimeMs - b.mtimeMs || b.length - a.length));
    const current = found.at(-1);
    if (current) {
      const older = found.length > 1 ? found[0] : undefined;
      pieces.push(Buffer.from(`\n${PREFIX}... output dropped here (past max_log_bytes); the end of it that was kept follows ...\n`));
      if (older) pieces.push(await readRange(older.handle, older.offset + current.length, older.offset + older.length));
      pieces.push(await readRange(current.handle, current.offset, current.offset + current.length));
    }
  } finally {
    await Promise.all(found.map(({ handle }) => handle.close()));
  }
  pieces.push(Buffer.from(`\n${PREFIX}the daemon stopped while this run was in progress (killed or crashed); the run is repeated\n`));
  await appendFile(logPath, Buffer.concat(pieces), { mode: 0o640 });
  await Promise.all(spillFiles(logPath).map((path) => rm(path, { force: true })));
}
