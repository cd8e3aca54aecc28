/** The two spill segments a capped run log keeps beside itself; a crash during the run leaves them behind. */
export function spillFiles(logPath: string): readonly [string, string] {
  return [`${logPath}.tail-a`, `${logPath}.tail-b`];
}

/**
 * Each segment starts with a header that says which turn it holds (the segments take turns:
 * 0, 1, 2, ...) and how many of the bytes after the header are current. A segment taken again
 * is written over in place rather than emptied first: emptying freed its pages and writing
 * refilled new ones, which took ~1.7× as long as writing over them (docs/benchmarks-record.md,
 * section 4). So the file's size no longer tells how much of it is current, and the turn tells
 * which segment is the newer without guessing from file times.
 */
export const SPILL_HEADER_BYTES = 64;
const MAGIC = 'deployhook-spill 2 ';
const TURN_DIGITS = 22;
const LENGTH_DIGITS = SPILL_HEADER_BYTES - MAGIC.length - TURN_DIGITS - 2;

export interface SpillHeader {
  turn: number;
  length: number;
}

export function spillHeader({ turn, length }: SpillHeader): Buffer {
  return Buffer.from(`${MAGIC}${String(turn).padStart(TURN_DIGITS, '0')} ${String(length).padStart(LENGTH_DIGITS, '0')}\n`, 'latin1');
}

/** The header from a segment's first bytes; undefined when they are not one. */
export function readSpillHeader(bytes: Buffer): SpillHeader | undefined {
  if (bytes.length < SPILL_HEADER_BYTES) return undefined;
  const match = /^deployhook-spill 2 (\d+) (\d+)\n$/.exec(bytes.toString('latin1', 0, SPILL_HEADER_BYTES));
  return match ? { turn: Number(match[1]), length: Number(match[2]) } : undefined;
}
