import { readFileSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { tempDir } from './tmp.js';

/** The path of a script in test/fixtures/scripts. */
export function fixtureScript(name: string): string {
  return fileURLToPath(new URL(`../fixtures/scripts/${name}`, import.meta.url));
}

/** An environment for commands: only PATH, so tests see exactly what they pass. */
export const baseEnv = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin' };

/** A Writable that keeps everything written to it, as text. */
export function collect(): Writable & { text(): string } {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  return Object.assign(sink, { text: () => Buffer.concat(chunks).toString('utf8') });
}

/**
 * The fields of /proc/<pid>/stat after the process's name (which may hold spaces and
 * parentheses): state, parent pid, group, ...; undefined when there is no such process.
 */
export function statFields(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The pids of `parent`'s children whose command line is `commandLine` (its words joined by NUL). */
export async function childrenOf(parent: number, commandLine: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (statFields(name)?.[1] !== String(parent)) continue;
    if ((await readFile(`/proc/${name}/cmdline`, 'latin1').catch(() => '')).replace(/\0+$/, '') === commandLine) found.push(Number(name));
  }
  return found;
}

/**
 * Whether the process is running. An exited process its parent has not reaped yet (an
 * orphan waiting for PID 1) is a zombie: it runs no code and holds no files, so it is not.
 */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z';
}

/** Reads a pid a fixture script wrote into `dir`. */
export async function readPid(dir: string, name: string): Promise<number> {
  return Number((await readFile(join(dir, name), 'utf8')).trim());
}

/**
 * A `perl` for the process launcher that runs the real one on the helper's script with `from`
 * replaced by `to` (and each further pair after it): the helper, changed in one place to show
 * what the daemon does when that goes wrong.
 */
export async function alteredPerl(from: string, to: string, ...more: Array<[string, string]>): Promise<string> {
  const wrapper = join(await tempDir(), 'perl');
  const replace = [[from, to], ...more]
    .map(([a, b]) => `$at = index($script, q\u0000${a}\u0000); die "not in the script" if $at < 0; substr($script, $at, length(q\u0000${a}\u0000)) = q\u0000${b}\u0000;`)
    .join(' ');
  writeFileSync(wrapper, `#!/usr/bin/env perl\nmy ($e, $script, @rest) = @ARGV; my $at; ${replace} exec('perl', $e, $script, @rest) or die "exec: $!";\n`, { mode: 0o755 });
  return wrapper;
}

/** Whether some process holds the kernel's lock (flock) on `path`, asked of util-linux's flock(1). */
export async function kernelLocked(path: string): Promise<boolean> {
  const { exitCode } = await execa('flock', ['--nonblock', path, 'true'], { reject: false });
  if (exitCode !== 0 && exitCode !== 1) throw new Error(`flock(1) exited with ${String(exitCode)}`);
  return exitCode === 1;
}
