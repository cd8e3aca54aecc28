import { readFile, truncate } from 'node:fs/promises';
import { decodeSegment } from '../../src/store/journal-frame.js';

/**
 * What a crash in the middle of a segment's last write leaves: the file cut `bytes` into its
 * last entry. Zeros written ahead of the entries may follow them; they are not what is cut.
 */
export async function cutIntoLastEntry(file: string, bytes: number): Promise<void> {
  const data = await readFile(file);
  await truncate(file, data.length - decodeSegment(data).ignoredBytes - bytes);
}
