/** The two spill segments a capped run log keeps beside itself; a crash during the run leaves them behind. */
export function spillFiles(logPath: string): readonly [string, string] {
  return [`${logPath}.tail-a`, `${logPath}.tail-b`];
}

/**
 * Each segment starts with a header that says how many of the bytes after it are current. A
 * segment taken again is written over in place rather than emptied first: emptying freed its
 * pages and writing refilled new ones, which took ~1.7× as long as writing over them
 * (docs/benchmarks.md, section 4). So the file's size no longer tells how much of it is current.
 */
export const SPILL_HEADER_BYTES = 40;
const MAGIC = 'deployhook-spill 1 ';

export function spillHeader(length: number): Buffer {
  return Buffer.from(`${MAGIC}${String(length).padStart(SPILL_HEADER_BYTES - MAGIC.length - 1, '0')}\n`, 'latin1');
}

/** How many bytes after the header are current, from a segment's first bytes; undefined when they are not a header. */
export function readSpillHeader(bytes: Buffer): number | undefined {
  if (bytes.length < SPILL_HEADER_BYTES || bytes.toString('latin1', 0, MAGIC.length) !== MAGIC) return undefined;
  const digits = bytes.toString('latin1', MAGIC.length, SPILL_HEADER_BYTES - 1);
  return /^\d+$/.test(digits) && bytes[SPILL_HEADER_BYTES - 1] === 0x0a ? Number(digits) : undefined;
}
