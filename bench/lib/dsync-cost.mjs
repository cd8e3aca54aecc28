// What one durable append costs the disk under a folder: the journal's writes are O_DSYNC
// (on disk when the write returns), so this is the floor of a `202`'s wait for the disk.
// Times COUNT appends of BYTES to a new file opened with O_DSYNC, one after another, then
// removes the file. With MODE `prealloc`, the file is first filled with zeros and fsynced, and
// the same writes go over those zeros in order instead of growing the file: what a journal
// whose segments are written ahead would cost (no change of the file's size to make durable
// with each write).
//
//   node bench/lib/dsync-cost.mjs [FOLDER=$TMPDIR] [COUNT=500] [BYTES=9500] [MODE=append|prealloc]
import { constants, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [folder = tmpdir(), countArg = '500', bytesArg = '9500', mode = 'append'] = process.argv.slice(2);
if (mode !== 'append' && mode !== 'prealloc') throw new Error(`Expected MODE append or prealloc, got ${mode}`);
const file = join(folder, `dsync-cost-${process.pid}.journal`);
const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC, 0o600);
const data = Buffer.alloc(Number(bytesArg), 'x');
const times = [];
try {
  if (mode === 'prealloc') {
    await handle.write(Buffer.alloc(Number(countArg) * data.length), 0, Number(countArg) * data.length, 0);
    await handle.sync();
  }
  for (let i = 0; i < Number(countArg); i++) {
    const started = performance.now();
    await (mode === 'prealloc' ? handle.write(data, 0, data.length, i * data.length) : handle.writev([data]));
    times.push(performance.now() - started);
  }
} finally {
  await handle.close();
  await rm(file, { force: true });
}
times.sort((a, b) => a - b);
const at = (p) => times[Math.min(times.length - 1, Math.ceil((p / 100) * times.length) - 1)].toFixed(2);
console.log(`${times.length} O_DSYNC ${mode === 'prealloc' ? 'writes over written zeros' : 'appends'} of ${data.length} bytes in ${folder}: p50 ${at(50)} ms, p90 ${at(90)} ms, p99 ${at(99)} ms, max ${at(100)} ms`);
