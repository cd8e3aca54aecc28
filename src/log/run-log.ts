import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Transform } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createCappedOutput } from './capped-output.js';
import { createSecretMasker } from './mask-secrets.js';

/**
 * One run's log file. Everything written to `output` (git, the command, deployhook's own
 * lines) passes through a masker first, so a secret the daemon knows never reaches disk,
 * then through a cap that keeps the beginning and the end of a flood of output.
 */
export interface RunLog {
  readonly output: Transform;
  /** A line of deployhook's own, marked so it stands out from the command's output. */
  note(text: string): void;
  /** The first write error, if the disk filled up or the file went away mid-run. */
  readonly error: Error | undefined;
  /** Flushes everything, writes the closing line after the kept end of the output, and closes the file. */
  close(closingNote: string): Promise<void>;
}

const PREFIX = '[deployhook] ';

function maskText(text: string, secrets: readonly string[]): string {
  return secrets.filter((secret) => secret !== '').reduce((masked, secret) => masked.split(secret).join('***'), text);
}

export async function openRunLog(path: string, secrets: readonly string[], maxBytes: number): Promise<RunLog> {
  await mkdir(dirname(path), { recursive: true });
  // Create (and so check) the file before streaming into it: a failure here is reported, not thrown later.
  await (await open(path, 'a', 0o640)).close();
  // A large buffer keeps a chatty command's output moving while the disk catches up.
  const file = createWriteStream(path, { flags: 'a', highWaterMark: 1024 * 1024 });
  const capped = createCappedOutput({ file, logPath: path, maxBytes });
  const output = createSecretMasker(secrets);
  let error: Error | undefined;
  const remember = (err: Error) => {
    error ??= err;
  };
  file.on('error', remember);
  output.on('error', remember);
  // The cap's input is ended by finish(), once the masker has flushed what it held back.
  output.pipe(capped.input, { end: false });
  return {
    output,
    note(text) {
      output.write(`${PREFIX}${text}\n`);
    },
    get error() {
      return error;
    },
    async close(closingNote) {
      // Everything the masker held back has gone into the cap once its readable side ends.
      const flushed = output.readableEnded ? Promise.resolve() : once(output, 'end');
      output.end();
      await flushed.catch(remember);
      await capped.finish().catch(remember);
      if (!file.destroyed) file.end(`${PREFIX}${maskText(closingNote, secrets)}\n`);
      await finished(file).catch(remember);
    },
  };
}
