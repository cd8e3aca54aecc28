import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { beforeAll, describe, expect, it } from 'vitest';
import { lockStateDir } from '../../src/store/state-lock.js';
import { alteredPerl, childrenOf, isRunning, kernelLocked, statFields } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

// pid 2^22 + 1 is above Linux's pid limit: no process has it.
const STALE = JSON.stringify({ pid: 4_194_305, startTime: '1', bootId: 'x' });

/** The lock's holders `pid` started (by their name in `ps`). */
function holdersOf(pid: number): Promise<number[]> {
  return childrenOf(pid, 'deployhook state_dir lock');
}

/** The one holder `pid` started. */
async function holderOf(pid: number): Promise<number> {
  const holders = await holdersOf(pid);
  expect(holders).toHaveLength(1);
  return holders[0] as number;
}

let racerScript: string;

/** A daemon's start, in a process of its own: the lock module bundled from src/, as dist/ holds it. */
beforeAll(async () => {
  // Not a tempDir(): that one goes after the first test.
  const dir = await mkdtemp(join(tmpdir(), 'deployhook-test-racer-'));

  await build({
    entryPoints: [fileURLToPath(new URL('../../src/store/state-lock.ts', import.meta.url))],
    outfile: join(dir, 'state-lock.mjs'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    logLevel: 'warning',
  });
  racerScript = join(dir, 'racer.mjs');
  // Says `ready`, waits for SIGUSR2 (so that every racer asks at the same moment; at once when
  // its second argument is `now`), takes the lock, says `won <pid>` or `lost <message>`, and
  // holds it until its stdin ends. SIGTERM and SIGINT do not stop it, as they do not stop a
  // draining daemon. (SIGUSR1 would start node's inspector.)
  await writeFile(
    racerScript,
    `import { lockStateDir } from './state-lock.mjs';
process.on('SIGTERM', () => undefined);
process.on('SIGINT', () => undefined);
const [dir, when] = process.argv.slice(2);
const take = async () => {
  try {
    const release = await lockStateDir(dir);
    console.log('won ' + process.pid);
    process.stdin.on('end', () => release().then(() => process.exit(0)));
  } catch (error) {
    console.log('lost ' + error.message);
    process.exit(0);
  }
};
if (when !== 'now') process.once('SIGUSR2', take);
process.stdin.resume();
console.log('ready');
if (when === 'now') await take();
`,
  );
  return () => rm(dir, { recursive: true, force: true });
});

interface Racer {
  child: ChildProcess;
  pid: number;
  /** The racer's next line. */
  next(): Promise<string>;
}

/** A racer, started through `via` (a command and its arguments) when given. */
function startRacer(dir: string, via: string[] = [], when = 'on SIGUSR2'): Racer {
  const [command = '', ...args] = [...via, process.execPath, racerScript, dir, when];
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'], detached: true });
  // Never 0: signals below go to its group, and -0 would be this process's own.
  const pid = child.pid ?? Number.NaN;
  expect(pid).toBeGreaterThan(0);
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let ended = false;
  let text = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    text += chunk;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n')) {
      const line = text.slice(0, end);
      text = text.slice(end + 1);
      const reader = waiting.shift();
      if (reader) reader(line);
      else lines.push(line);
    }
  });
  child.stdout?.once('end', () => {
    ended = true;
    for (const reader of waiting.splice(0)) reader('(ended)');
  });
  return {
    child,
    pid,
    next: () => new Promise((resolve) => (lines.length > 0 ? resolve(lines.shift() ?? '') : ended ? resolve('(ended)') : waiting.push(resolve))),
  };
}

/** Starts a racer and has it take the lock. */
async function racerTaking(dir: string): Promise<Racer & { answer: string }> {
  const racer = startRacer(dir);
  expect(await racer.next()).toBe('ready');
  racer.child.kill('SIGUSR2');
  return { ...racer, answer: await racer.next() };
}

async function endRacer(racer: Racer): Promise<void> {
  if (racer.child.exitCode !== null || racer.child.signalCode !== null) return;
  const exited = new Promise((resolve) => racer.child.once('exit', resolve));
  racer.child.stdin?.end();
  await exited;
}

describe('the state_dir lock', () => {
  it('is refused while its holder runs, and released whole', async () => {
    const dir = await tempDir();
    const release = await lockStateDir(dir);
    const lock = JSON.parse(await readFile(join(dir, 'deployhook.lock'), 'utf8')) as { pid: number };
    expect(lock.pid).toBe(process.pid);
    expect(await kernelLocked(dir)).toBe(true);
    await expect(lockStateDir(dir)).rejects.toThrow(`Expected to be the only deployhook using state_dir ${dir}, but process ${process.pid} holds ${join(dir, 'deployhook.lock')}`);
    await release();
    expect(await readdir(dir)).toEqual([]);
    expect(await kernelLocked(dir)).toBe(false);
    await (await lockStateDir(dir))();
  });

  it('takes over a lock whose process is gone, or that is not a lock at all, and leaves nothing aside', async () => {
    const dir = await tempDir();
    const path = join(dir, 'deployhook.lock');
    for (const stale of [STALE, '', 'garbage']) {
      await writeFile(path, stale);
      const release = await lockStateDir(dir);
      expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
      expect(await readdir(dir)).toEqual(['deployhook.lock']);
      await release();
    }
  });

  it('goes to one of twelve daemons starting at the same moment over a stale lock', async () => {
    for (let round = 0; round < 3; round += 1) {
      const dir = await tempDir();
      await writeFile(join(dir, 'deployhook.lock'), STALE);
      const racers = Array.from({ length: 12 }, () => startRacer(dir));
      try {
        for (const racer of racers) expect(await racer.next()).toBe('ready');
        for (const racer of racers) racer.child.kill('SIGUSR2');
        const answers = await Promise.all(racers.map((racer) => racer.next()));
        const winners = answers.filter((answer) => answer.startsWith('won '));
        expect(winners, answers.join('\n')).toHaveLength(1);
        for (const answer of answers.filter((text) => !winners.includes(text))) {
          expect(answer).toMatch(new RegExp(`^lost Expected to be the only deployhook using state_dir ${dir}, but (process \\d+|another process) holds`));
        }
        const winner = Number(winners[0]?.slice('won '.length));
        expect(await kernelLocked(dir)).toBe(true);
        expect(JSON.parse(await readFile(join(dir, 'deployhook.lock'), 'utf8'))).toMatchObject({ pid: winner });
        expect(await readdir(dir)).toEqual(['deployhook.lock']);
      } finally {
        await Promise.all(racers.map(endRacer));
      }
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it('is free again as soon as a daemon killed with kill -9 is gone', async () => {
    const dir = await tempDir();
    const racer = await racerTaking(dir);
    expect(racer.answer).toBe(`won ${String(racer.pid)}`);
    const holder = await holderOf(racer.pid);
    const gone = new Promise((resolve) => racer.child.once('exit', resolve));
    racer.child.kill('SIGKILL');
    await gone;
    // The holder sees its stdin end and goes; the lock file left behind names a dead process.
    await until('the holder has ended', () => !isRunning(holder));
    expect(await kernelLocked(dir)).toBe(false);
    const release = await lockStateDir(dir);
    expect(JSON.parse(await readFile(join(dir, 'deployhook.lock'), 'utf8'))).toMatchObject({ pid: process.pid });
    await release();
  });

  it('is kept through the signals a draining daemon gets, its holder included, until the daemon ends', async () => {
    const dir = await tempDir();
    const racer = await racerTaking(dir);
    try {
      expect(racer.answer).toMatch(/^won /);
      const { pid } = racer;
      const holder = await holderOf(pid);
      // Ctrl-C in a terminal reaches the daemon's group; a service manager stopping the whole
      // group reaches the holder too.
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.kill(-pid, signal);
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const) process.kill(holder, signal);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(isRunning(holder)).toBe(true);
      expect(await kernelLocked(dir)).toBe(true);
    } finally {
      await endRacer(racer);
    }
    expect(await kernelLocked(dir)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
  });

  it('is taken again when its holder is killed', async () => {
    const dir = await tempDir();
    const problems: string[] = [];
    const release = await lockStateDir(dir, { onProblem: (message) => problems.push(message) });
    try {
      const before = await holderOf(process.pid);
      process.kill(before, 'SIGKILL');
      await until('the lock is taken again', () => problems.length > 0);
      expect(problems).toEqual([`the process holding the kernel's lock on state_dir ${dir} ended (SIGKILL); it was taken again`]);
      expect(await kernelLocked(dir)).toBe(true);
      expect(await holderOf(process.pid)).not.toBe(before);
    } finally {
      await release();
    }
    expect(await kernelLocked(dir)).toBe(false);
  });

  // A container on the same host sharing the folder: its pid means another process here.
  describe.skipIf(process.getuid?.() !== 0 && !process.env.CI)('with a daemon in another pid namespace', () => {
    it('is refused while that daemon holds it', async () => {
      expect(process.getuid?.(), 'this test needs root (unshare --pid)').toBe(0);
      const dir = await tempDir();
      const racer = startRacer(dir, ['unshare', '--pid', '--fork', '--mount-proc'], 'now');
      try {
        expect(await racer.next()).toBe('ready');
        expect(await racer.next()).toBe('won 1');
        expect(JSON.parse(await readFile(join(dir, 'deployhook.lock'), 'utf8'))).toMatchObject({ pid: 1 });
        await expect(lockStateDir(dir)).rejects.toThrow(`Expected to be the only deployhook using state_dir ${dir}, but another process holds the kernel's lock (flock) on ${dir} (\`lslocks\` shows which process)`);
      } finally {
        await endRacer(racer);
      }
      await (await lockStateDir(dir))();
    });
  });

  it('is taken again once the process that took it while its holder was gone lets it go', async () => {
    const dir = await tempDir();
    const problems: string[] = [];
    const release = await lockStateDir(dir, { retakeEveryMs: 100, onProblem: (message) => problems.push(message) });
    // Another program's flock, taken the moment the holder is gone (flock(1) and its `sleep`,
    // which inherits the lock, in a group of their own).
    const other = spawn('flock', [dir, 'sleep', '30'], { stdio: 'ignore', detached: true });
    const stopOther = () => {
      try {
        process.kill(-(other.pid ?? Number.NaN), 'SIGKILL');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
      }
    };
    try {
      await until('the other flock waiting for the lock', () => statFields(other.pid ?? Number.NaN)?.[0] === 'S');
      process.kill(await holderOf(process.pid), 'SIGKILL');
      await until('the lock found taken', () => problems.length > 0);
      expect(problems).toEqual([
        `the process holding the kernel's lock on state_dir ${dir} ended (SIGKILL), and it could not be taken again (another process holds it): only ${join(dir, 'deployhook.lock')} keeps a second daemon out until it is; tried again every 0.1 s`,
      ]);
      stopOther();
      await until('the lock taken again', () => problems.length > 1);
      expect(problems[1]).toBe(`the process holding the kernel's lock on state_dir ${dir} ended (SIGKILL); it was taken again`);
      expect(await kernelLocked(dir)).toBe(true);
      expect(await holdersOf(process.pid)).toHaveLength(1);
    } finally {
      stopOther();
      await release();
    }
    expect(await kernelLocked(dir)).toBe(false);
    expect(await holdersOf(process.pid)).toEqual([]);
  });

  it('falls back to the lock file alone, naming why, when the folder cannot be opened or locked', async () => {
    const dir = await tempDir();
    const cases: Array<[string, string, string]> = [
      ['sysopen(my $lock, $dir, 0)', 'sysopen(my $lock, "$dir/missing", 0)', 'open: ENOENT'],
      ['until (flock($lock, 6))', 'close($lock); until (flock($lock, 6))', 'flock: EBADF'],
    ];
    for (const [from, to, why] of cases) {
      const problems: string[] = [];
      const release = await lockStateDir(dir, { perl: await alteredPerl(from, to), onProblem: (message) => problems.push(message) });
      expect(problems).toEqual([expect.stringContaining(`could not take the kernel's lock on state_dir ${dir} (${why}): only`)]);
      expect(await kernelLocked(dir)).toBe(false);
      await release();
    }
  });

  it('falls back to the lock file alone, and says so, where perl cannot run', async () => {
    const dir = await tempDir();
    const problems: string[] = [];
    const release = await lockStateDir(dir, { perl: join(dir, 'no-perl'), onProblem: (message) => problems.push(message) });
    try {
      expect(problems).toEqual([
        `could not take the kernel's lock on state_dir ${dir} (could not start ${join(dir, 'no-perl')}: not found): only ${join(dir, 'deployhook.lock')} keeps a second daemon out, which two daemons starting at the same moment over a stale lock could both pass`,
      ]);
      expect(await kernelLocked(dir)).toBe(false);
      // A daemon that has the kernel's lock still finds the file naming a running daemon.
      await expect(lockStateDir(dir)).rejects.toThrow(`but process ${process.pid} holds`);
      expect(await kernelLocked(dir)).toBe(false);
    } finally {
      await release();
    }
    expect(await readdir(dir)).toEqual([]);
  });
});
