import { once } from 'node:events';
import { chmodSync, createWriteStream, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PipeMaker, pipeWidening, widenWhenChatty } from '../../src/runner/output-pipes.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

// Its own file: a missing perl turns widening off for the rest of the process, as in the daemon.

/** A pipe that gets 1.5 MB written into it, read by a socket that `widenWhenChatty` watches with `perl`. */
async function chattyPipe(perl: string): Promise<void> {
  const [pipe] = (await new PipeMaker().take(1)) ?? [];
  if (!pipe) throw new Error('expected a pipe');
  const source = new Socket({ fd: pipe.read, readable: true, writable: false });
  widenWhenChatty(source, pipe.read, perl);
  source.resume();
  const writer = createWriteStream('', { fd: pipe.write });
  writer.end(Buffer.alloc(1_500_000, 'x'));
  await once(source, 'end');
  source.destroy();
}

describe('a pipe that cannot be widened', () => {
  it('is reported once for each kind of problem: perl refused by Linux, perl missing', async () => {
    const told: string[] = [];
    pipeWidening.onProblem = (reason) => told.push(reason);
    const refusing = join(await tempDir(), 'perl');
    writeFileSync(refusing, '#!/bin/sh\nexit 1\n');
    chmodSync(refusing, 0o755);
    await chattyPipe(refusing);
    await chattyPipe(refusing);
    await until('the refusal to be reported', () => told.length === 1);
    expect(told[0]).toMatch(/could not widen the pipe \(exit 1\): Linux refused F_SETPIPE_SZ/);

    await chattyPipe('/nonexistent/perl');
    await until('the missing perl to be reported', () => told.length === 2);
    await chattyPipe('/nonexistent/perl');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(told.slice(1)).toEqual(['could not start /nonexistent/perl to widen the pipe: not found']);
  });
});
