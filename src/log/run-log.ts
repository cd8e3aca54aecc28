import { createWriteStream, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { PipeTaker } from '../runner/run-command.js';
import { createCappedOutput } from './capped-output.js';
import { captureOnThread, canCaptureOnThread } from './capture-thread.js';
import { createMasker } from './mask-secrets.js';

/**
 * One run's log file. Everything written to `output` (git, the command, deployhook's own
 * lines) passes through a masker first, so a secret the daemon knows never reaches disk,
 * then through a cap that keeps the beginning and the end of a flood of output.
 */
export interface RunLog {
  readonly output: Writable;
  /** A line of deployhook's own, marked so it stands out from the command's output. */
  note(text: string): void;
  /** Reads a chatty command's pipes into this log on a thread of its own (capture-thread.ts). */
  readonly pipeTaker: PipeTaker;
  /** The first write error, if the disk filled up or the file went away mid-run. */
  readonly error: Error | undefined;
  /** Flushes everything, writes the closing line after the kept end of the output, and closes the file. */
  close(closingNote: string): Promise<void>;
}

/** Starts every line the daemon itself writes into a run log. */
export const PREFIX = '[deployhook] ';

/**
 * Opens (creating) a log file for appending; its folder is made only the first time it is
 * missing. Synchronously: the open takes tens of microseconds, where a trip through node's
 * thread pool, on the way to the run's first git, waited ~1 ms behind the reply's durable
 * writes (docs/benchmarks-record.md, section 3).
 */
function openForAppend(path: string): number {
  try {
    return openSync(path, 'a', 0o640);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    mkdirSync(dirname(path), { recursive: true });
    return openSync(path, 'a', 0o640);
  }
}

export interface RunLogOptions {
  /** The capture thread's script (the built one unless a test says otherwise). */
  captureWorker?: string;
}

export async function openRunLog(path: string, secrets: readonly string[], maxBytes: number, options: RunLogOptions = {}): Promise<RunLog> {
  // Opened (and so checked) before streaming into it: a failure here is reported, not thrown later.
  // The stream writes through this same descriptor (and closes it): one open on the way to the run's first git.
  const fd = openForAppend(path);
  // A large buffer keeps a chatty command's output moving while the disk catches up.
  const file = createWriteStream(path, { fd, highWaterMark: 1024 * 1024 });
  // Masking and capping happen in one Writable: every stream between the command and the file costs throughput.
  let capped;
  try {
    capped = createCappedOutput({ file, logPath: path, maxBytes, secrets });
  } catch (error) {
    file.destroy(); // closes the descriptor
    throw error;
  }
  const output = capped.input;
  let error: Error | undefined;
  const remember = (err: Error) => {
    error ??= err;
  };
  file.on('error', remember);
  output.on('error', remember);
  return {
    output,
    note(text) {
      output.write(`${PREFIX}${text}\n`);
    },
    pipeTaker: {
      ready: () => error === undefined && !file.destroyed && !output.writableEnded && canCaptureOnThread(),
      take: (pipes) => captureOnThread({ capped, logFd: fd, logPath: path, maxBytes, secrets, pipes, entry: options.captureWorker }),
    },
    get error() {
      return error;
    },
    async close(closingNote) {
      // finish() ends the output: what the masker held back goes in first.
      const totals = await capped.finish().catch(remember);
      if (!file.destroyed) {
        // The closing line starts a line of its own, also after output that did not end one.
        const newline = totals && !totals.endsWithNewline ? '\n' : '';
        const masker = createMasker(secrets);
        file.end(Buffer.concat([masker.mask(Buffer.from(`${newline}${PREFIX}${closingNote}\n`)), masker.flush()]));
      }
      await finished(file).catch(remember);
    },
  };
}
