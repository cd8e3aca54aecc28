import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, createWriteStream, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closePipes, PipeMaker, type PipeEnds } from '../../src/runner/output-pipes.js';
import { PipeWidener, WIDE_PIPE_BYTES } from '../../src/runner/pipe-widener.js';
import { ProcessLauncher } from '../../src/runner/process-launcher.js';
import { runCommand } from '../../src/runner/run-command.js';
import { alteredPerl, baseEnv, collect } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const pipes = new PipeMaker();

/** A pipe whose read end a socket reads, watched by `widener`. */
async function watchedPipe(widener: PipeWidener): Promise<{ pipe: PipeEnds; source: Socket }> {
  const [pipe] = (await pipes.take(1)) ?? [];
  if (!pipe) throw new Error('expected a pipe');
  const source = new Socket({ fd: pipe.read, readable: true, writable: false });
  widener.widenWhenChatty(source, pipe.read);
  source.resume();
  return { pipe, source };
}

/** Writes `bytes` into the pipe (from node's thread pool: the write end blocks) and waits until the reader has had them all. */
async function pour(pipe: PipeEnds, source: Socket, bytes: number): Promise<void> {
  let received = 0;
  const counting = (chunk: Buffer) => (received += chunk.length);
  source.on('data', counting);
  createWriteStream('', { fd: pipe.write, autoClose: false }).write(Buffer.alloc(bytes, 'x'));
  await until('the reader to have every byte', () => received >= bytes);
  source.off('data', counting);
}

/** The pipe's capacity as Linux reports it (F_GETPIPE_SZ), asked through its write end. */
function capacity(pipe: PipeEnds): number {
  const asked = spawnSync('perl', ['-e', 'open(my $p, ">&=3") or die; print fcntl($p, 1032, 0)'], { stdio: ['ignore', 'pipe', 'inherit', pipe.write], encoding: 'utf8' });
  return Number(asked.stdout);
}

/** A pipe that gets 1.5 MB written into it and ends, read by a socket that `widener` watches. */
async function chattyPipe(widener: PipeWidener): Promise<void> {
  const { pipe, source } = await watchedPipe(widener);
  const writer = createWriteStream('', { fd: pipe.write });
  writer.end(Buffer.alloc(1_500_000, 'x'));
  await once(source, 'end');
  source.destroy();
}

/** `launcher` with its helper up: it comes up with the first process it starts. */
async function helperUp(launcher: ProcessLauncher): Promise<ProcessLauncher> {
  const started = await runCommand({ argv: ['true'], cwd: await tempDir(), env: baseEnv, output: collect(), timeoutMs: 10_000, killAfterMs: 1_000, launcher });
  expect(started.exitCode).toBe(0);
  return launcher;
}

describe('a pipe widener', () => {
  it('widens a pipe once 1 MiB has come through it, and leaves a quiet one as it is', async () => {
    const widener = new PipeWidener();
    const chatty = await watchedPipe(widener);
    const quiet = await watchedPipe(widener);
    await pour(quiet.pipe, quiet.source, 512 * 1024);
    await pour(chatty.pipe, chatty.source, 1024 * 1024);
    await until('the chatty pipe to be widened', () => capacity(chatty.pipe) === WIDE_PIPE_BYTES);
    expect(capacity(quiet.pipe)).toBe(65536);
    for (const { pipe, source } of [chatty, quiet]) {
      source.destroy();
      closePipes([pipe], ['write']);
    }
  });

  it('keeps at most `mostAtOnce` pipes widened, and widens another once one of them is closed', async () => {
    const widener = new PipeWidener({ mostAtOnce: 1 });
    const first = await watchedPipe(widener);
    await pour(first.pipe, first.source, 1024 * 1024);
    await until('the first pipe to be widened', () => capacity(first.pipe) === WIDE_PIPE_BYTES);
    const second = await watchedPipe(widener);
    await pour(second.pipe, second.source, 1024 * 1024);
    // The limit is reached: the second stays narrow, though it passed 1 MiB.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(capacity(second.pipe)).toBe(65536);

    first.source.destroy();
    closePipes([first.pipe], ['write']);
    await once(first.source, 'close');
    const third = await watchedPipe(widener);
    await pour(third.pipe, third.source, 1024 * 1024);
    await until('the third pipe to be widened', () => capacity(third.pipe) === WIDE_PIPE_BYTES);
    for (const { pipe, source } of [second, third]) {
      source.destroy();
      closePipes([pipe], ['write']);
    }
  });

  it('widens through the process helper while it is up, with no perl started for it', async () => {
    const launcher = await helperUp(new ProcessLauncher());
    // A perl of the widener's own cannot start: only the helper can widen this pipe.
    const widener = new PipeWidener({ launcher, perl: '/nonexistent/perl' });
    const told: string[] = [];
    widener.onProblem = (reason) => told.push(reason);
    const chatty = await watchedPipe(widener);
    await pour(chatty.pipe, chatty.source, 1024 * 1024);
    await until('the chatty pipe to be widened', () => capacity(chatty.pipe) === WIDE_PIPE_BYTES);
    expect(told).toEqual([]);

    // What Linux refuses comes back with its errno (a size above 2 GiB is never granted, even to root).
    expect(await launcher.widen(chatty.pipe.read, 3 * 2 ** 30)).toEqual({ ok: false, refused: expect.stringMatching(/^E[A-Z]+$/) });
    expect(capacity(chatty.pipe)).toBe(WIDE_PIPE_BYTES);
    chatty.source.destroy();
    closePipes([chatty.pipe], ['write']);
  });

  it('starts a perl of its own, and reports nothing, when the helper cannot open the pipe or ends while asked', async () => {
    for (const [from, to] of [
      ['"/proc/$daemon/fd/$fd"', '"/nonexistent/$fd"'],
      ['sub widen {', 'sub widen { kill(9, $$);'],
    ] as const) {
      const launcher = await helperUp(new ProcessLauncher({ perl: await alteredPerl(from, to) }));
      const widener = new PipeWidener({ launcher });
      const told: string[] = [];
      widener.onProblem = (reason) => told.push(reason);
      const chatty = await watchedPipe(widener);
      await pour(chatty.pipe, chatty.source, 1024 * 1024);
      await until(`the chatty pipe to be widened (${to})`, () => capacity(chatty.pipe) === WIDE_PIPE_BYTES);
      expect(told).toEqual([]);
      chatty.source.destroy();
      closePipes([chatty.pipe], ['write']);
    }
  });

  it('starts a perl of its own to widen a pipe when the helper is not up', async () => {
    const launcher = new ProcessLauncher();
    expect(await launcher.widen(0, WIDE_PIPE_BYTES)).toEqual({ ok: false, unavailable: 'the process helper is not running' });
    const widener = new PipeWidener({ launcher });
    const chatty = await watchedPipe(widener);
    await pour(chatty.pipe, chatty.source, 1024 * 1024);
    await until('the chatty pipe to be widened', () => capacity(chatty.pipe) === WIDE_PIPE_BYTES);
    chatty.source.destroy();
    closePipes([chatty.pipe], ['write']);
  });

  it('reports each kind of problem once: perl refused by Linux, perl missing', async () => {
    const refusing = join(await tempDir(), 'perl');
    writeFileSync(refusing, '#!/bin/sh\nexit 1\n');
    chmodSync(refusing, 0o755);
    const refused = new PipeWidener({ perl: refusing });
    const told: string[] = [];
    refused.onProblem = (reason) => told.push(reason);
    await chattyPipe(refused);
    await chattyPipe(refused);
    await until('the refusal to be reported', () => told.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(told).toHaveLength(1);
    expect(told[0]).toMatch(/could not widen the pipe \(exit 1\): Linux refused F_SETPIPE_SZ/);

    const missing = new PipeWidener({ perl: '/nonexistent/perl' });
    const toldMissing: string[] = [];
    missing.onProblem = (reason) => toldMissing.push(reason);
    await chattyPipe(missing);
    await until('the missing perl to be reported', () => toldMissing.length === 1);
    await chattyPipe(missing);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(toldMissing).toEqual(['could not start /nonexistent/perl to widen the pipe: not found']);
  });
});
