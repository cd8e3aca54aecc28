import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { describe, it, expect } from 'vitest';
import { runCommand } from '../../src/runner/run-command.js';
import { tempDir } from '../helpers/tmp.js';
import { baseEnv } from '../helpers/processes.js';

describe('runCommand output', () => {
  it('delivers a large output completely through a slow output, holding back the command rather than buffering', async () => {
    const size = 50 * 1024 * 1024;
    let received = 0;
    let mostBuffered = 0;
    const slow = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        mostBuffered = Math.max(mostBuffered, slow.writableLength);
        setTimeout(callback, 1);
      },
    });

    const result = await runCommand({ argv: ['head', '-c', String(size), '/dev/zero'], cwd: await tempDir(), env: baseEnv, output: slow, timeoutMs: 60_000, killAfterMs: 1_000 });

    expect(result).toMatchObject({ exitCode: 0, leftovers: false, timedOut: false });
    // Backpressure: at most a chunk or two per pipe beyond the high-water mark, never megabytes.
    expect(mostBuffered).toBeLessThan(1024 * 1024);
    expect(slow.writableEnded).toBe(false);
    // What the output has accepted but not yet written arrives once the caller ends it.
    slow.end();
    await finished(slow);
    expect(received).toBe(size);
  });

  it('keeps draining the command when the output fails, so the command is not left blocked', async () => {
    const errors: Error[] = [];
    const failing = new Writable({
      write(_chunk, _encoding, callback) {
        callback(new Error('disk full'));
      },
    });
    failing.on('error', (error) => errors.push(error));

    const result = await runCommand({ argv: ['head', '-c', String(5 * 1024 * 1024), '/dev/zero'], cwd: await tempDir(), env: baseEnv, output: failing, timeoutMs: 10_000, killAfterMs: 1_000 });

    expect(result).toMatchObject({ exitCode: 0, timedOut: false });
    expect(errors.map((error) => error.message)).toEqual(['disk full']);
  });

  it('keeps stdout and stderr lines whole and in the order each stream produced them', async () => {
    const lines: string[] = [];
    const output = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        callback();
      },
    });
    const script = 'i=0; while [ $i -lt 200 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done';

    await runCommand({ argv: ['sh', '-c', script], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000 });

    const numbers = (prefix: string) => lines.filter((line) => line.startsWith(prefix)).map((line) => Number(line.split(' ')[1]));
    const expected = Array.from({ length: 200 }, (_, i) => i);
    expect(numbers('out ')).toEqual(expected);
    expect(numbers('err ')).toEqual(expected);
  });
});
