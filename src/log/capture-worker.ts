// The capture thread's entry (built to dist/capture-worker.js): reads a chatty command's pipes
// itself, masks and caps their output and writes it to the run log, all with synchronous
// system calls, then hands the log back (capture-thread.ts).
import { readSync, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { createCappedOutput } from './capped-output.js';
import { tagChunk } from './mask-secrets.js';
import { syncSpillIo } from './spill-io.js';
import type { CaptureJob, CaptureMessage } from './capture-thread.js';

/** A widened pipe's size (pipe-widener.ts): one read takes all of it. */
const READ_BYTES = 1024 * 1024;
/** After a read found nothing, the thread sleeps this long, twice as long each time after that, up to the longest. */
const SHORTEST_PAUSE_MS = 0.05;
const LONGEST_PAUSE_MS = 50;
/** At most this often the daemon is told that output came (it gives up on pipes that stay quiet). */
const ACTIVE_EVERY_MS = 20;

const job = workerData as CaptureJob;
const stop = new Int32Array(job.stop);
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

/**
 * Reads what each pipe holds (they are non-blocking) until every one has ended or the daemon
 * says stop. The buffer is used again for each read: a chunk is on disk (or masked and
 * copied, for the bytes the masker holds back) by the time its write calls back.
 */
async function capture(): Promise<void> {
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  let open = job.pipes;
  let pause = SHORTEST_PAUSE_MS;
  let toldActive = 0;
  while (open.length > 0 && Atomics.load(stop, 0) === 0) {
    let read = 0;
    for (const pipe of open) {
      let bytes: number;
      try {
        bytes = readSync(pipe.fd, buffer, 0, READ_BYTES, null);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        bytes = 0; // a pipe that cannot be read has ended as far as the log goes
      }
      if (bytes === 0) {
        open = open.filter((other) => other !== pipe);
        continue;
      }
      read += bytes;
      await write(tagChunk(buffer.subarray(0, bytes), pipe.channel));
    }
    if (read > 0) {
      pause = SHORTEST_PAUSE_MS;
      const now = performance.now();
      if (now - toldActive >= ACTIVE_EVERY_MS) {
        toldActive = now;
        post({ type: 'active' });
      }
    } else if (open.length > 0) {
      Atomics.wait(stop, 0, 0, pause);
      pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
    }
  }
}

post({ type: 'reading' });
await capture();
post({ type: 'done', state: await capped.lend() });
