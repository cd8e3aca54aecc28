import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { SyncOptions } from '../../src/git/sync.js';

/** Everything git writes to a sync's `output`, as text. */
export interface CollectedOutput {
  stream: Writable;
  text(): string;
}

export function collectOutput(): CollectedOutput {
  const chunks: Buffer[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
      callback();
    },
  });
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

/**
 * The base environment a caller gives git: PATH, LANG and a HOME of the test's own,
 * so the machine's ~/.gitconfig and ~/.ssh play no part. `gitconfig` is written to it.
 */
export async function gitEnv(root: string, gitconfig = ''): Promise<Record<string, string>> {
  const home = join(root, 'home');
  await mkdir(home, { recursive: true });
  await writeFile(join(home, '.gitconfig'), gitconfig);
  return { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: home, LANG: 'C' };
}

/** Options for one sync, with an output collector and a signal that is never aborted. */
export function syncOptions(
  base: Pick<SyncOptions, 'remote' | 'checkout' | 'sha' | 'env'> & Partial<SyncOptions>,
): SyncOptions & { collected: CollectedOutput } {
  const collected = collectOutput();
  return {
    submodules: false,
    auth: {},
    output: collected.stream,
    signal: new AbortController().signal,
    collected,
    ...base,
  };
}
