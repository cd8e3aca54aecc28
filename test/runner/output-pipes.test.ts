import { fstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { closePipes, PipeMaker, type PipeEnds } from '../../src/runner/output-pipes.js';
import { outputPipes, runCommand } from '../../src/runner/run-command.js';
import { baseEnv } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

/** An output that keeps everything written to it, as text. */
function collect(): { output: Writable; text: () => string } {
  const chunks: Buffer[] = [];
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return { output, text: () => Buffer.concat(chunks).toString('utf8') };
}

const run = async (script: string, pipes?: PipeMaker) => {
  const { output, text } = collect();
  const result = await runCommand({ argv: ['sh', '-c', script], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, ...(pipes ? { pipes } : {}) });
  return { result, text: text() };
};

describe("a command's stdout and stderr", () => {
  it('are pipes: the command can open /dev/stdout and /dev/stderr, as under a shell', async () => {
    const { result, text } = await run('echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr; echo teed | tee /dev/stderr; test -p /dev/stdout && test -p /dev/stderr && echo both-pipes');
    expect(outputPipes.unavailable).toBeUndefined();
    expect(text).not.toContain('No such device');
    expect(text.split('\n').filter(Boolean).sort()).toEqual(['both-pipes', 'teed', 'teed', 'to-stderr', 'to-stdout']);
    expect(result).toMatchObject({ exitCode: 0 });
  });

  it('use each pipe once, so a process that escaped an earlier run cannot write into a later run', async () => {
    const pipes = new PipeMaker();
    // `setsid` leaves the run's process group, so the run ends without it; it still holds the first run's stdout.
    const first = await run('setsid sh -c "sleep 0.5; echo stray-line" & echo first-run', pipes);
    expect(first.text).toContain('first-run');
    const second = await run('sleep 1; echo second-run', pipes);
    expect(second.text).toBe('second-run\n');
  });

  it('come from FIFOs that are unlinked as soon as both ends are open, more than one batch of them', async () => {
    const pipes = new PipeMaker();
    const taken: PipeEnds[] = [];
    try {
      for (let i = 0; i < 40; i += 1) taken.push(...((await pipes.take(2)) ?? []));
      expect(taken).toHaveLength(80);
      for (const { read, write } of taken) {
        for (const fd of [read, write]) expect(fstatSync(fd)).toMatchObject({ nlink: 0 });
        expect(fstatSync(read).isFIFO()).toBe(true);
        expect(fstatSync(read).ino).toBe(fstatSync(write).ino);
      }
      expect(new Set(taken.map(({ read }) => fstatSync(read).ino)).size).toBe(80);
    } finally {
      closePipes(taken);
    }
  });

  it('leave no descriptor open once the commands have ended, whether they started or not', async () => {
    const pipes = new PipeMaker();
    const open = () => readdirSync('/proc/self/fd').length;
    const before = open();
    for (let i = 0; i < 20; i += 1) await run(`echo run ${i}; echo err >&2`, pipes);
    const { output } = collect();
    const missing = await runCommand({ argv: ['/nonexistent/program'], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, pipes });
    expect(missing.startError).toMatch(/nonexistent/);
    // Sockets close their descriptors on the next turns of the event loop.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(open()).toBe(before);
  });

  it('are made again when the FIFOs made ahead, or their folder, vanish from the temporary folder', async () => {
    const parent = await tempDir();
    const pipes = new PipeMaker({ parent });
    const taken: PipeEnds[] = [];
    try {
      taken.push(...((await pipes.take(2)) ?? []));
      const [folder = ''] = readdirSync(parent);
      // A clean-up of old files takes the FIFOs made ahead, then another takes the folder.
      for (const fifo of readdirSync(join(parent, folder))) rmSync(join(parent, folder, fifo));
      taken.push(...((await pipes.take(2)) ?? []));
      rmSync(join(parent, folder), { recursive: true });
      taken.push(...((await pipes.take(2)) ?? []));
      expect(taken).toHaveLength(6);
      expect(taken.every(({ read }) => fstatSync(read).isFIFO())).toBe(true);
      expect(pipes.unavailable).toBeUndefined();
    } finally {
      closePipes(taken);
    }
  });

  it('fall back to socket pairs when FIFOs cannot be made, and the command still runs', async () => {
    const pipes = new PipeMaker({ mkfifo: '/nonexistent/mkfifo' });
    const told: string[] = [];
    pipes.onUnavailable = (reason) => told.push(reason);
    const { result, text } = await run('echo still-runs; echo err >&2', pipes);
    await run('echo again', pipes);
    expect(pipes.unavailable).toMatch(/mkfifo failed/);
    expect(told).toEqual([pipes.unavailable]);
    expect(text.split('\n').filter(Boolean).sort()).toEqual(['err', 'still-runs']);
    expect(result).toMatchObject({ exitCode: 0 });
  });
});
