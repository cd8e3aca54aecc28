import { crc32 } from 'node:zlib';

/**
 * One change to a file under the journaled folder; `path` is relative to that folder. `put`
 * replaces the file; `delete` removes it. `create`, only in journals that earlier versions
 * wrote (a delivery record per file), writes it only where it does not exist yet (its name
 * and mtime are what matters, which a replay must not renew); the delivery log reuses the
 * frame with `put` entries named by a hash.
 */
export type JournalEntry = { op: 'put' | 'create'; path: string; data: Buffer } | { op: 'delete'; path: string };

// A frame: u32 body length, u32 CRC-32 of the body, body. The body: u8 op (1 put, 2 delete,
// 3 create), u16 path length, the path (UTF-8), then the file's bytes. Little-endian.
const HEADER = 8;
const OPS = ['put', 'delete', 'create'] as const;

export function encodeEntry(entry: JournalEntry): Buffer {
  const path = Buffer.from(entry.path, 'utf8');
  const data = entry.op === 'delete' ? Buffer.alloc(0) : entry.data;
  const frame = Buffer.allocUnsafe(HEADER + 3 + path.length + data.length);
  const body = frame.subarray(HEADER);
  body.writeUInt8(OPS.indexOf(entry.op) + 1, 0);
  body.writeUInt16LE(path.length, 1);
  path.copy(body, 3);
  data.copy(body, 3 + path.length);
  frame.writeUInt32LE(body.length, 0);
  frame.writeUInt32LE(crc32(body), 4);
  return frame;
}

export interface DecodedSegment {
  entries: JournalEntry[];
  /** Bytes after the last whole, intact frame: the tail of a write that a crash cut short. */
  ignoredBytes: number;
}

/**
 * The entries of a segment, in order, up to the first frame that is cut short or does not
 * match its checksum. Nothing after such a frame was acknowledged: each batch is on disk
 * (O_DSYNC) before the next one starts, and a failed write closes the segment.
 */
export function decodeSegment(bytes: Buffer): DecodedSegment {
  const entries: JournalEntry[] = [];
  let offset = 0;
  while (bytes.length - offset >= HEADER) {
    const length = bytes.readUInt32LE(offset);
    const start = offset + HEADER;
    if (length < 3 || length > bytes.length - start) break;
    const body = bytes.subarray(start, start + length);
    if (crc32(body) !== bytes.readUInt32LE(offset + 4)) break;
    const op = OPS[body.readUInt8(0) - 1];
    const pathLength = body.readUInt16LE(1);
    if (op === undefined || 3 + pathLength > length) break;
    const path = body.subarray(3, 3 + pathLength).toString('utf8');
    entries.push(op === 'delete' ? { op, path } : { op, path, data: body.subarray(3 + pathLength) });
    offset = start + length;
  }
  return { entries, ignoredBytes: bytes.length - offset };
}
