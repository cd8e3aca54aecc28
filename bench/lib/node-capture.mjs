// The floor for any Node program that keeps a command's output: spawns `bash -c SCRIPT` and
// writes its stdout and stderr to FILE through a WriteStream (1 MiB buffer), nothing else: no
// masking, no cap, no HTTP. bench/log-capture.sh runs it beside deployhook and the redirect.
// By default the output comes through node's own stdio pipes, which are socket pairs; with
// `fifo` it comes through real pipes made as deployhook makes them (src/runner/output-pipes.ts:
// a FIFO opened at both ends, then unlinked); with `fifo-wide` those pipes are first widened
// to 1 MiB, as deployhook widens a chatty command's pipe (by perl's fcntl F_SETPIPE_SZ); with
// `thread` the widened pipes are read by a worker thread each, with blocking reads of up to
// 1 MiB and synchronous appends to FILE (deployhook's capture thread, without its masking,
// cap and polling). With CAPTURE_CPU_FILE set, the CPU time this process used (all its threads,
// not the command's), user and system seconds, is written there at the end.
//
//   node bench/lib/node-capture.mjs FILE SCRIPT [socketpair|fifo|fifo-wide|thread]     (the script's environment is this one's)
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, createWriteStream, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { isMainThread, Worker, workerData } from 'node:worker_threads';

if (!isMainThread) {
  // A thread: reads its pipe (blocking) into one buffer and appends each read to the file.
  const { read, out } = workerData;
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  for (let bytes; (bytes = readSync(read, buffer, 0, buffer.length, null)) > 0; ) {
    for (let offset = 0; offset < bytes; ) offset += writeSync(out, buffer, offset, bytes - offset);
  }
  process.exit(0);
}

const [file, script, mode = 'socketpair'] = process.argv.slice(2);
if (!file || !script || !['socketpair', 'fifo', 'fifo-wide', 'thread'].includes(mode)) {
  console.error('usage: node-capture.mjs FILE SCRIPT [socketpair|fifo|fifo-wide|thread]');
  process.exit(2);
}

/** Writes this process's CPU time to CAPTURE_CPU_FILE, if set: "USER SYSTEM" in seconds. */
function noteCpu() {
  if (!process.env.CAPTURE_CPU_FILE) return;
  const { user, system } = process.cpuUsage();
  writeFileSync(process.env.CAPTURE_CPU_FILE, `${(user / 1e6).toFixed(3)} ${(system / 1e6).toFixed(3)}\n`);
}

/** A pipe: both ends of a FIFO, which is then removed; for a thread, the read end blocks. */
function pipe() {
  const folder = mkdtempSync(join(tmpdir(), 'node-capture-'));
  const path = join(folder, 'fifo');
  execFileSync('mkfifo', ['-m', '600', path]);
  let read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const write = openSync(path, constants.O_WRONLY);
  if (mode === 'thread') {
    const blocking = openSync(path, constants.O_RDONLY);
    closeSync(read);
    read = blocking;
  }
  rmSync(folder, { recursive: true });
  return { read, write };
}

// A thread appends to the file itself.
const out = mode === 'thread' ? undefined : createWriteStream(file, { highWaterMark: 1024 * 1024 });
let sources;
if (mode !== 'socketpair') {
  const pipes = [pipe(), pipe()];
  if (mode === 'fifo-wide' || mode === 'thread') {
    for (const { read } of pipes) {
      const widened = spawnSync('perl', ['-e', 'open(my $pipe, "<&=3") or exit 2; fcntl($pipe, 1031, 1048576) or exit 1'], { stdio: ['ignore', 'ignore', 'inherit', read] });
      if (widened.status !== 0) throw new Error(`could not widen a pipe with perl: ${widened.error?.message ?? `exit ${String(widened.status)}`}`);
    }
  }
  if (mode === 'thread') {
    const fd = openSync(file, 'w', 0o640);
    const threads = pipes.map(({ read }) => new Worker(new URL(import.meta.url), { workerData: { read, out: fd } }));
    spawn('bash', ['-c', script], { stdio: ['ignore', pipes[0].write, pipes[1].write] });
    for (const { write } of pipes) closeSync(write);
    await Promise.all(threads.map((thread) => new Promise((resolve) => thread.once('exit', resolve))));
    closeSync(fd);
    noteCpu();
    process.exit(0);
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
noteCpu();
