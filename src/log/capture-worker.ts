// The capture thread's entry (built to dist/capture-worker.js): reads a chatty command's pipes
// itself, masks and caps their output and writes it to the run log, all with synchronous
// system calls, then hands the log back (capture-thread.ts).
import { readSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { createCappedOutput } from './capped-output.js';
import { tagChunk } from './mask-secrets.js';
import { syncSpillIo } from './spill-io.js';
import type { PipeToTake } from '../runner/run-command.js';
import { READING, STOP, type CaptureJob, type CaptureMessage } from './capture-protocol.js';

/** A widened pipe's size (pipe-widener.ts): one read takes all of it. */
const READ_BYTES = 1024 * 1024;
/** After a read found nothing, the thread sleeps this long, twice as long each time after that, up to the longest. */
const SHORTEST_PAUSE_MS = 0.05;
const LONGEST_PAUSE_MS = 50;
/**
 * A read that brought this much or more shows a widened pipe (1 MiB). From then on, a round of
 * reads that brought less than a quarter of the most one read has brought is followed by a
 * pause of `BATCH_PAUSE_MS`: the command writes slower than the thread reads, and reading its
 * output in fewer, larger pieces takes fewer system calls and wake-ups, of the thread and of
 * the command, on cores they share. A pipe of 1 MiB fills in that time only at over 1 GB/s.
 * Reading whatever had come at once, 1 GB of output took the thread about twice the CPU time
 * of a bare copy (docs/benchmarks-record.md, section 4); an unwidened pipe (64 KiB or less, which
 * such a pause could fill) is read as before.
 */
const WIDE_READ_BYTES = 512 * 1024;
const BATCH_PAUSE_MS = 1;
/** At most this often the daemon is told that output came (it gives up on pipes that stay quiet). */
const ACTIVE_EVERY_MS = 20;
/** Reads of each pipe after the daemon said stop: what a full pipe holds, and as much again. */
const DRAIN_READS = 2;

const job = workerData as CaptureJob;
const signals = new Int32Array(job.signals);
const post = (message: CaptureMessage) => parentPort?.postMessage(message);

function writeAll(fd: number, chunk: Buffer): void {
  for (let offset = 0; offset < chunk.length; ) offset += writeSync(fd, chunk, offset, chunk.length - offset);
}

// The log's descriptor is the daemon's own (append mode): every byte is on its way to disk before the next read.
const file = new Writable({
  write(chunk: Buffer, _encoding, callback) {
    try {
      writeAll(job.logFd, chunk);
      callback();
    } catch (error) {
      callback(error as Error);
    }
  },
});
const capped = createCappedOutput({ file, logPath: job.logPath, maxBytes: job.maxBytes, secrets: job.secrets, io: syncSpillIo, state: job.state });
const write = (chunk: Buffer) => new Promise<void>((resolve) => capped.input.write(chunk, () => resolve()));

/** What a read of a pipe gave: bytes, nothing for now, or its end (an error other than "try again" ends it too). */
function readPipe(fd: number, buffer: Buffer): number | 'empty' | 'ended' {
  for (;;) {
    try {
      const bytes = readSync(fd, buffer, 0, buffer.length, null);
      return bytes === 0 ? 'ended' : bytes;
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      if (code !== 'EINTR') return code === 'EAGAIN' ? 'empty' : 'ended';
    }
  }
}

/**
 * Reads what each pipe holds (they are non-blocking) until every one has ended or the daemon
 * says stop; then what the pipes still hold, up to `DRAIN_READS` reads each, so that a
 * command's last output is not left behind when the daemon stops waiting for a pipe that a
 * process outside its group keeps open. The buffer is used again for each read: a chunk is on
 * disk (or masked and copied, for the bytes the masker holds back) by the time its write calls back.
 */
async function capture(): Promise<void> {
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  let open = job.pipes;
  let pause = SHORTEST_PAUSE_MS;
  let toldActive = 0;
  let largest = 0;
  const take = async (pipe: PipeToTake): Promise<number> => {
    const read = readPipe(pipe.fd, buffer);
    if (read === 'ended') open = open.filter((other) => other !== pipe);
    if (typeof read !== 'number') return 0;
    largest = Math.max(largest, read);
    // Told before the write, which can take a while when the disk is behind.
    const now = performance.now();
    if (now - toldActive >= ACTIVE_EVERY_MS) {
      toldActive = now;
      post({ type: 'active' });
    }
    await write(tagChunk(buffer.subarray(0, read), pipe.channel));
    return read;
  };
  while (open.length > 0 && Atomics.load(signals, STOP) === 0) {
    let read = 0;
    for (const pipe of open) read += await take(pipe);
    if (read > 0) {
      pause = SHORTEST_PAUSE_MS;
      if (largest >= WIDE_READ_BYTES && read < largest / 4 && open.length > 0) Atomics.wait(signals, STOP, 0, BATCH_PAUSE_MS);
    } else if (open.length > 0) {
      Atomics.wait(signals, STOP, 0, pause);
      pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
    }
  }
  for (const pipe of open) for (let reads = 0; reads < DRAIN_READS && (await take(pipe)) > 0; reads += 1);
}

Atomics.store(signals, READING, 1);
post({ type: 'reading' });
let failure: unknown;
try {
  await capture();
} catch (error) {
  failure = error;
}
// Lending closes the spill segments. A failure of the loop is the log's (the daemon marks the
// run), and the daemon reads what is left of the pipes.
const state = await capped.lend();
if (failure === undefined) post({ type: 'done', state });
else post({ type: 'done', state: state.failure !== undefined ? state : { ...state, failure: `the capture thread failed: ${String(failure)}` }, failed: true });
