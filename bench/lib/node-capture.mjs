// The floor for any Node program that keeps a command's output: spawns `bash -c SCRIPT` and
// writes its stdout and stderr to FILE through a WriteStream (1 MiB buffer), nothing else: no
// masking, no cap, no HTTP. bench/log-capture.sh runs it beside deployhook and the redirect.
// By default the output comes through node's own stdio pipes, which are socket pairs; with
// `fifo` it comes through real pipes made as deployhook makes them (src/runner/output-pipes.ts:
// a FIFO opened at both ends, then unlinked).
//
//   node bench/lib/node-capture.mjs FILE SCRIPT [socketpair|fifo]     (the script's environment is this one's)
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, createWriteStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';

const [file, script, mode = 'socketpair'] = process.argv.slice(2);
if (!file || !script || (mode !== 'socketpair' && mode !== 'fifo')) {
  console.error('usage: node-capture.mjs FILE SCRIPT [socketpair|fifo]');
  process.exit(2);
}

/** A pipe: both ends of a FIFO, which is then removed. */
function pipe() {
  const folder = mkdtempSync(join(tmpdir(), 'node-capture-'));
  const path = join(folder, 'fifo');
  execFileSync('mkfifo', ['-m', '600', path]);
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY);
  rmSync(folder, { recursive: true });
  return { read, write };
}

const out = createWriteStream(file, { highWaterMark: 1024 * 1024 });
let sources;
if (mode === 'fifo') {
  const pipes = [pipe(), pipe()];
  spawn('bash', ['-c', script], { stdio: ['ignore', pipes[0].write, pipes[1].write] });
  for (const { write } of pipes) closeSync(write);
  sources = pipes.map(({ read }) => new Socket({ fd: read, readable: true, writable: false }));
} else {
  const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  sources = [child.stdout, child.stderr];
}
for (const source of sources) source.pipe(out, { end: false });
await Promise.all(sources.map((source) => finished(source)));
out.end();
await finished(out);
