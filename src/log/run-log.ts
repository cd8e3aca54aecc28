import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Transform } from 'node:stream';
import { createSecretMasker } from './mask-secrets.js';

/**
 * One run's log file. Everything written to `output` (git, the command, deployhook's own
 * lines) passes through a masker first, so a secret the daemon knows never reaches disk.
 */
export interface RunLog {
  readonly output: Transform;
  /** A line of deployhook's own, marked so it stands out from the command's output. */
  note(text: string): void;
  /** The first write error, if the disk filled up or the file went away mid-run. */
  readonly error: Error | undefined;
  close(): Promise<void>;
}

export async function openRunLog(path: string, secrets: readonly string[]): Promise<RunLog> {
  await mkdir(dirname(path), { recursive: true });
  // Create (and so check) the file before streaming into it: a failure here is reported, not thrown later.
  await (await open(path, 'a', 0o640)).close();
  const file: WriteStream = createWriteStream(path, { flags: 'a' });
  const output = createSecretMasker(secrets);
  let error: Error | undefined;
  const remember = (err: Error) => {
    error ??= err;
  };
  file.on('error', (err) => {
    remember(err);
    // Keep draining so the command is never blocked on a log that cannot be written.
    output.unpipe(file);
    output.resume();
  });
  output.on('error', remember);
  output.pipe(file);
  const finished = new Promise<void>((resolve) => {
    file.on('close', resolve);
  });
  return {
    output,
    note(text) {
      output.write(`[deployhook] ${text}\n`);
    },
    get error() {
      return error;
    },
    async close() {
      output.end();
      await finished;
    },
  };
}
