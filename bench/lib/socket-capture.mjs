// A variant of node-capture.mjs: the command's stdout and stderr are one end of a Unix socket
// pair, and Node reads the other end with `onread` into buffers of 256 KiB (its own pipes are
// read 64 KiB at a time), each read written to FILE with a positional write, up to 7 at once
// (8 buffers; one is always the next read's). Nothing else: no masking, no cap. It differs from
// node-capture.mjs in three ways at once: the read size, one socket for both streams instead
// of two pipes, and several writes in flight instead of one WriteStream (docs/benchmarks-record.md,
// section 4, "Tried").
//
//   node bench/lib/socket-capture.mjs FILE SCRIPT     (the script's environment is this one's)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READ_BYTES = 256 * 1024;
const BUFFERS = 8;

const [file, script] = process.argv.slice(2);
if (!file || !script) {
  console.error('usage: socket-capture.mjs FILE SCRIPT');
  process.exit(2);
}
const out = await open(file, 'w');
const dir = mkdtempSync(join(tmpdir(), 'socket-capture-'));
const path = join(dir, 's');
const server = createServer();
await new Promise((resolve) => server.listen(path, resolve));
const accepted = new Promise((resolve) => server.once('connection', resolve));

const free = Array.from({ length: BUFFERS }, () => Buffer.allocUnsafe(READ_BYTES));
let position = 0;
let writing = 0;
let paused = false;
let ended = false;
let done;
const finished = new Promise((resolve) => (done = resolve));
const reader = connect({
  path,
  onread: {
    buffer: () => free.pop() ?? Buffer.allocUnsafe(READ_BYTES),
    callback: (bytes, buffer) => {
      const at = position;
      position += bytes;
      writing++;
      void out.write(buffer, 0, bytes, at).then(() => {
        writing--;
        free.push(buffer);
        if (paused) {
          paused = false;
          reader.resume();
        }
        if (ended && writing === 0) done();
      });
      // node asks for the next read's buffer even after a pause: keep one for it.
      if (free.length > 1) return true;
      paused = true;
      return false;
    },
  },
});
const commandEnd = await accepted;
server.close();
rmSync(dir, { recursive: true, force: true });
spawn('bash', ['-c', script], { stdio: ['ignore', commandEnd, commandEnd] });
commandEnd.destroy();
reader.on('end', () => {
  ended = true;
  if (writing === 0) done();
});
await finished;
await out.close();
