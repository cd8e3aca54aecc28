import { fstatSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { closePipes, PipeMaker, type PipeEnds } from '../../src/runner/output-pipes.js';
import { WIDE_PIPE_BYTES } from '../../src/runner/pipe-widener.js';
import { ProcessLauncher } from '../../src/runner/process-launcher.js';
import { outputPipes, runCommand } from '../../src/runner/run-command.js';
import { baseEnv, collect } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

const run = async (script: string, pipes?: PipeMaker) => {
  const output = collect();
  const result = await runCommand({ argv: ['sh', '-c', script], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, ...(pipes ? { pipes } : {}) });
  return { result, text: output.text() };
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
    const dir = await tempDir();
    const go = join(dir, 'go');
    const tried = join(dir, 'tried');
    // `setsid` leaves the run's process group, so the run ends without it; it still holds the
    // first run's stdout, and writes to it only once the second run has begun.
    const first = await run(`setsid sh -c 'while [ ! -e ${go} ]; do sleep 0.05; done; touch ${tried}; echo stray-line' & echo first-run`, pipes);
    expect(first.text).toBe('first-run\n');
    const second = await run(`touch ${go}; sleep 1; echo second-run`, pipes);
    expect(readdirSync(dir).sort()).toEqual(['go', 'tried']);
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
    const output = collect();
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

  it('never come from a folder that is no longer the one made for them, and never through a link', async () => {
    const parent = await tempDir();
    const pipes = new PipeMaker({ parent });
    const taken: PipeEnds[] = [];
    const target = join(parent, 'precious');
    writeFileSync(target, 'keep me\n');
    try {
      taken.push(...((await pipes.take(2)) ?? []));
      const [name = ''] = readdirSync(parent).filter((entry) => entry.startsWith('deployhook-pipes-'));
      const folder = join(parent, name);
      // The folder goes (a clean-up of old files), and someone else makes one of that name, with
      // links where the FIFOs made ahead were.
      rmSync(folder, { recursive: true });
      mkdirSync(folder, { mode: 0o777 });
      for (let i = 1; i <= 128; i += 1) symlinkSync(target, join(folder, `p${String(i)}`));
      const next = (await pipes.take(2)) ?? [];
      taken.push(...next);
      expect(next).toHaveLength(2);
      for (const { read, write } of next) {
        expect(fstatSync(read).isFIFO()).toBe(true);
        expect(fstatSync(write).ino).toBe(fstatSync(read).ino);
      }
      expect(readFileSync(target, 'utf8')).toBe('keep me\n');
      // Nothing in the other folder was used or removed.
      expect(readdirSync(folder)).toHaveLength(128);
      expect(readdirSync(parent).filter((entry) => entry.startsWith('deployhook-pipes-'))).toHaveLength(2);
    } finally {
      closePipes(taken);
    }
  });

  it("are made in a new folder that takes away the folders of this user's processes that died without removing theirs", async () => {
    const parent = await tempDir();
    const gone = spawnSync('true').pid;
    const abandoned = join(parent, `deployhook-pipes-${String(gone)}-abc123`);
    const living = join(parent, `deployhook-pipes-${String(process.ppid)}-def456`);
    for (const folder of [abandoned, living]) mkdirSync(folder, { mode: 0o700 });
    const pipes = new PipeMaker({ parent });
    const taken = (await pipes.take(1)) ?? [];
    closePipes(taken);
    expect(taken).toHaveLength(1);
    const left = readdirSync(parent);
    expect(left).not.toContain(`deployhook-pipes-${String(gone)}-abc123`);
    expect(left).toContain(`deployhook-pipes-${String(process.ppid)}-def456`);
    expect(left.filter((entry) => entry.startsWith(`deployhook-pipes-${String(process.pid)}-`))).toHaveLength(1);
  });

  it('have one exit listener for every folder the process makes, not one each', async () => {
    const before = process.listenerCount('exit');
    const taken: PipeEnds[] = [];
    try {
      for (let i = 0; i < 12; i += 1) taken.push(...((await new PipeMaker({ parent: await tempDir() }).take(1)) ?? []));
      expect(taken).toHaveLength(12);
      // One at most: the first folder of this process may have been made by this test.
      expect(process.listenerCount('exit') - before).toBeLessThanOrEqual(1);
    } finally {
      closePipes(taken);
    }
  });

  it('are not started into when the run is cancelled while they are made', async () => {
    const dir = await tempDir();
    const slowMkfifo = join(dir, 'slow-mkfifo');
    writeFileSync(slowMkfifo, '#!/bin/sh\nsleep 0.3\nexec mkfifo "$@"\n', { mode: 0o755 });
    const pipes = new PipeMaker({ mkfifo: slowMkfifo });
    const stop = new AbortController();
    const output = collect();
    const started: number[] = [];
    const running = runCommand({ argv: ['sh', '-c', 'echo started > started; echo ran'], cwd: dir, env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, signal: stop.signal, pipes, onStart: (pgid) => started.push(pgid) });
    stop.abort();
    const result = await running;
    expect(result).toMatchObject({ cancelled: true, exitCode: null });
    expect(started).toEqual([]);
    expect(output.text()).toBe('');
    expect(readdirSync(dir)).toEqual(['slow-mkfifo']);
  });

  it('come from FIFOs the process helper makes, with no mkfifo started, and from mkfifo where the helper cannot be used', async () => {
    const launcher = new ProcessLauncher();
    // No mkfifo to start: only the helper can have made them.
    const byHelper = new PipeMaker({ launcher, mkfifo: '/nonexistent/mkfifo' });
    const { result, text } = await run('echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr', byHelper);
    expect(byHelper.unavailable).toBeUndefined();
    expect(text.split('\n').filter(Boolean).sort()).toEqual(['to-stderr', 'to-stdout']);
    expect(result).toMatchObject({ exitCode: 0 });
    const taken = (await byHelper.take(2)) ?? [];
    try {
      expect(taken).toHaveLength(2);
      for (const { read } of taken) expect(fstatSync(read)).toMatchObject({ nlink: 0, mode: 0o10600 });
    } finally {
      closePipes(taken);
    }

    const noHelper = new ProcessLauncher({ perl: '/nonexistent/perl' });
    noHelper.onProblem = () => undefined;
    const byMkfifo = new PipeMaker({ launcher: noHelper });
    expect((await run('test -p /dev/stdout && echo a-pipe', byMkfifo)).text).toBe('a-pipe\n');
    expect(noHelper.unavailable).toMatch(/could not start/);
    expect(byMkfifo.unavailable).toBeUndefined();
  });

  it('the helper says which errno stopped it making FIFOs, and makes none after it', async () => {
    const launcher = new ProcessLauncher();
    const dir = await tempDir();
    const made = await launcher.makeFifos([join(dir, 'one'), join(dir, 'missing', 'two'), join(dir, 'three')]);
    expect(made).toEqual({ ok: false, refused: 'ENOENT' });
    expect(readdirSync(dir)).toEqual(['one']);
    expect(lstatSync(join(dir, 'one')).isFIFO()).toBe(true);
    expect(await launcher.makeFifos([join(dir, 'four')])).toEqual({ ok: true });
    expect(readdirSync(dir).sort()).toEqual(['four', 'one']);
  });

  it('the helper makes FIFOs 0600 whatever the umask, as mkfifo -m 600 does', async () => {
    const dir = await tempDir();
    // The helper inherits the umask it is started with.
    const before = process.umask(0o277);
    let launcher: ProcessLauncher;
    try {
      launcher = new ProcessLauncher();
      expect(await launcher.makeFifos([join(dir, 'first')])).toEqual({ ok: true });
    } finally {
      process.umask(before);
    }
    expect(await launcher.makeFifos([join(dir, 'second')])).toEqual({ ok: true });
    for (const name of ['first', 'second']) expect(lstatSync(join(dir, name)).mode & 0o7777).toBe(0o600);
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

  it('grow to 1 MiB for a command that floods one of them, and stay as they are for a quiet one', async () => {
    // The command asks Linux how large its pipes are (F_GETPIPE_SZ) through descriptors 8 and 9, its stdout and stderr.
    const sizes = `exec 8>&1 9>&2; size() { perl -e 'open(my $p, ">&=", 0 + $ARGV[0]) or die; print fcntl($p, 1032, 0)' "$1"; }`;
    const quiet = await run(`${sizes}; echo "sizes $(size 8) $(size 9)" >&2`);
    expect(quiet.text).toBe(`sizes ${65536} ${65536}\n`);
    // 2 MB on stdout; then the size is looked at until the daemon has widened the pipe (or 5 s have passed).
    const flood = await run(`${sizes}; head -c 2000000 /dev/zero | tr '\\0' x; for i in $(seq 50); do [ "$(size 8)" = ${WIDE_PIPE_BYTES} ] && break; sleep 0.1; done; echo "sizes $(size 8) $(size 9)" >&2`);
    expect(flood.text.replaceAll('x', '')).toBe(`sizes ${WIDE_PIPE_BYTES} ${65536}\n`);
    expect(flood.text.length - flood.text.replaceAll('x', '').length).toBe(2_000_000);
    expect(flood.result).toMatchObject({ exitCode: 0 });
  });
});

// Switching users needs root, as deployhook itself does; CI runs as root, so there it must not skip.
describe.skipIf(process.getuid?.() !== 0 && !process.env.CI)("a command's pipes under run_as", () => {
  it('belong to the user the command runs as, so it can open /dev/stdout and /dev/stderr too', async () => {
    expect(process.getuid?.(), 'this test needs root').toBe(0);
    const output = collect();
    const result = await runCommand({ argv: ['sh', '-c', 'id -u; echo to-stdout > /dev/stdout; echo to-stderr > /dev/stderr'], cwd: '/', env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, user: { uid: 65534, gid: 65534 } });
    expect(output.text().split('\n').filter(Boolean).sort()).toEqual(['65534', 'to-stderr', 'to-stdout']);
    expect(result).toMatchObject({ exitCode: 0 });
  });
});
