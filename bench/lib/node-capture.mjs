// The floor for any Node program that keeps a command's output: spawns `bash -c SCRIPT` and
// writes its stdout and stderr to FILE through a WriteStream (1 MiB buffer), nothing else: no
// masking, no cap, no HTTP. bench/log-capture.sh runs it beside deployhook and the redirect.
// By default the output comes through node's own stdio pipes, which are socket pairs; with
// `fifo` it comes through real pipes made as deployhook makes them (src/runner/output-pipes.ts:
// a FIFO opened at both ends, then unlinked); with `fifo-wide` those pipes are first widened
// to 1 MiB, as deployhook widens a chatty command's pipe (by perl's fcntl F_SETPIPE_SZ).
//
//   node bench/lib/node-capture.mjs FILE SCRIPT [socketpair|fifo|fifo-wide]     (the script's environment is this one's)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, createWriteStream, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';

const [file, script, mode = 'socketpair'] = process.argv.slice(2);
if (!file || !script || !['socketpair', 'fifo', 'fifo-wide'].includes(mode)) {
  console.error('usage: node-capture.mjs FILE SCRIPT [socketpair|fifo|fifo-wide]');
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
if (mode !== 'socketpair') {
  const pipes = [pipe(), pipe()];
  if (mode === 'fifo-wide') {
    for (const { read } of pipes) {
      const widened = spawnSync('perl', ['-e', 'open(my $pipe, "<&=3") or exit 2; fcntl($pipe, 1031, 1048576) or exit 1'], { stdio: ['ignore', 'ignore', 'inherit', read] });
      if (widened.status !== 0) throw new Error(`could not widen a pipe with perl: ${widened.error?.message ?? `exit ${String(widened.status)}`}`);
    }
  }
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
