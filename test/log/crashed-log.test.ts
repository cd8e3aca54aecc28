import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { open, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCappedOutput } from '../../src/log/capped-output.js';
import { closeCrashedLog } from '../../src/log/crashed-log.js';
import { readSpillHeader, SPILL_HEADER_BYTES, spillHeader } from '../../src/log/spill-files.js';
import { mulberry32 as random } from '../helpers/random.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const DROPPED = '\n[deployhook] ... output dropped here (past max_log_bytes); the end of it that was kept follows ...\n';
const STOPPED = '\n[deployhook] the daemon stopped while this run was in progress (killed or crashed); the run is repeated\n';

/** The length the header of the segment at `path` gives; undefined before there is one. */
async function headerLength(path: string): Promise<number | undefined> {
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return undefined;
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(SPILL_HEADER_BYTES), 0, SPILL_HEADER_BYTES, 0);
    return readSpillHeader(buffer.subarray(0, bytesRead))?.length;
  } finally {
    await handle.close();
  }
}

describe('the log of a run the daemon died in', () => {
  // Outputs that go round the two segments several times and stop part of the way into one,
  // so that the segment being filled still holds bytes of its previous round past its header's length.
  it.each([
    { seed: 1, maxBytes: 1000, rounds: 3.5 },
    { seed: 7, maxBytes: 4096, rounds: 6.25 },
    { seed: 42, maxBytes: 64, rounds: 9.9 },
  ])('gets the exact last half of max_log_bytes from the spill segments, none of their stale bytes (seed $seed)', async ({ seed, maxBytes, rounds }) => {
    const next = random(seed);
    const dir = await tempDir();
    const logPath = join(dir, 'run.log');
    const file = createWriteStream(logPath, { flags: 'a' });
    const capped = createCappedOutput({ file, logPath, maxBytes });
    const head = Math.floor(maxBytes / 2);
    const tail = maxBytes - head;
    const output = Buffer.from(Array.from({ length: Math.floor(head + rounds * tail) }, () => 0x61 + Math.floor(next() * 26)));
    for (let offset = 0; offset < output.length; ) {
      const size = 1 + Math.floor(next() * tail);
      const chunk = output.subarray(offset, offset + size);
      offset += size;
      await new Promise<void>((resolve) => capped.input.write(chunk, () => resolve()));
    }
    // Killed once what was written has reached the segments and their headers.
    const filling = (output.length - head - 1) % tail + 1;
    const newest = Math.floor((output.length - head - 1) / tail) % 2 === 0 ? `${logPath}.tail-a` : `${logPath}.tail-b`;
    await until('the header of the segment being filled to count all of it', async () => (await headerLength(newest)) === filling);
    file.end();
    await once(file, 'close');

    await closeCrashedLog(logPath);
    const log = await readFile(logPath, 'latin1');
    expect(log).toBe(`${output.toString('latin1', 0, head)}${DROPPED}${output.toString('latin1', output.length - tail)}${STOPPED}`);
    expect(await readdir(dir)).toEqual(['run.log']);
    // The writer's segment files are closed (its log is gone: it reports that).
    await expect(capped.finish()).rejects.toThrow();
  });

  it('gets, whenever the daemon is killed, a window of the output as long as the kept end, never bytes of an earlier turn', async () => {
    const next = random(5);
    const maxBytes = 64;
    const head = maxBytes / 2;
    const tail = maxBytes - head;
    const dir = await tempDir();
    const logPath = join(dir, 'run.log');
    const file = createWriteStream(logPath, { flags: 'a' });
    const capped = createCappedOutput({ file, logPath, maxBytes });
    const output = Buffer.from(Array.from({ length: head + 12 * tail }, () => 0x61 + Math.floor(next() * 26)));
    let checked = 0;
    for (let fed = 0; fed < output.length; ) {
      const size = 1 + Math.floor(next() * 9);
      const chunk = output.subarray(fed, fed + size);
      fed += chunk.length;
      // Not waiting for the write: a kill can come at any point of it, header writes included.
      capped.input.write(chunk);
      await new Promise((resolve) => setImmediate(resolve));
      if (fed <= head) continue;
      // What a restart would make of the segments as they are now: both read in one go (no
      // turn of the event loop in between, so the writer cannot move on), then recovered from a copy.
      const segments = ['a', 'b'].map((side) => (existsSync(`${logPath}.tail-${side}`) ? readFileSync(`${logPath}.tail-${side}`) : undefined));
      const copy = join(await tempDir(), 'run.log');
      await writeFile(copy, '');
      for (const [i, side] of ['a', 'b'].entries()) if (segments[i]) await writeFile(`${copy}.tail-${side}`, segments[i] as Buffer);
      await closeCrashedLog(copy);
      const recovered = await readFile(copy, 'latin1');
      const kept = recovered.includes(DROPPED) ? recovered.slice(recovered.indexOf(DROPPED) + DROPPED.length, recovered.length - STOPPED.length) : '';
      const written = output.toString('latin1', head, fed);
      expect(written.includes(kept), `after ${fed} bytes, kept ${JSON.stringify(kept)}`).toBe(true);
      if (written.length > 2 * tail + 9) expect(kept.length).toBe(tail);
      checked += 1;
    }
    await capped.finish();
    file.end();
    await once(file, 'close');
    expect(checked).toBeGreaterThan(50);
  });

  it('reads segments without a header, as deployhook wrote them before, whole', async () => {
    const dir = await tempDir();
    const logPath = join(dir, 'run.log');
    await writeFile(logPath, 'first half\n');
    // Written in the same millisecond: the shorter one is the one being filled.
    const now = new Date();
    await writeFile(`${logPath}.tail-a`, 'older-0123456789');
    await writeFile(`${logPath}.tail-b`, 'newer');
    await utimes(`${logPath}.tail-a`, now, now);
    await utimes(`${logPath}.tail-b`, now, now);
    await closeCrashedLog(logPath);
    expect(await readFile(logPath, 'utf8')).toBe(`first half\n${DROPPED}-0123456789newer${STOPPED}`);
  });

  it('takes the segment of the later turn as the newer, also when both were written in the same millisecond', async () => {
    const dir = await tempDir();
    const logPath = join(dir, 'run.log');
    await writeFile(logPath, 'first half\n');
    const now = new Date();
    // Both full (4 bytes each); bytes past a header's length are from an earlier turn.
    await writeFile(`${logPath}.tail-a`, Buffer.concat([spillHeader({ turn: 3, length: 4 }), Buffer.from('NEW!stale')]));
    await writeFile(`${logPath}.tail-b`, Buffer.concat([spillHeader({ turn: 2, length: 4 }), Buffer.from('old.')]));
    for (const side of ['a', 'b']) await utimes(`${logPath}.tail-${side}`, now, now);
    await closeCrashedLog(logPath);
    expect(await readFile(logPath, 'utf8')).toBe(`first half\n${DROPPED}NEW!${STOPPED}`);
  });

  it('does not open a FIFO put where a segment would be, and still ends the log', async () => {
    const dir = await tempDir();
    const logPath = join(dir, 'run.log');
    await writeFile(logPath, 'output\n');
    execFileSync('mkfifo', [`${logPath}.tail-a`]);
    await closeCrashedLog(logPath);
    expect(await readFile(logPath, 'utf8')).toBe(`output\n${STOPPED}`);
    expect(await readdir(dir)).toEqual(['run.log']);
  });
});
