import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { F_SETPIPE_SZ } from './process-helper-script.js';
import { pathOnlyEnvironment } from './path-only-env.js';
import type { ProcessLauncher } from './process-launcher.js';

/** What a chatty command's pipe grows to: Linux's largest for a process without privileges (/proc/sys/fs/pipe-max-size). */
export const WIDE_PIPE_BYTES = 1024 * 1024;
/** How much output makes a command chatty enough for a wider pipe. */
export const WIDEN_AFTER_BYTES = 1024 * 1024;
/** Most pipes widened at once: Linux gives each user 64 MiB of pipes before it shrinks new ones. */
const MOST_WIDENED = 8;
/**
 * perl's part: its descriptor 3 is the pipe. Descriptor 3, not 0: libuv makes a child's stdin
 * blocking, and that flag is shared with the daemon's read end.
 */
const SET_PIPE_SIZE = 'open(my $pipe, "<&=3") or exit 2; fcntl($pipe, 0 + $ARGV[0], 0 + $ARGV[1]) or exit 1';

const REFUSED = `Linux refused F_SETPIPE_SZ to ${String(WIDE_PIPE_BYTES)} bytes (is /proc/sys/fs/pipe-max-size lower, or the user's pipe allowance spent?)`;

export interface PipeWidenerOptions {
  /** The program that widens a pipe; `perl` from PATH by default. */
  perl?: string;
  /** Most pipes kept widened at once (8 by default). */
  mostAtOnce?: number;
  /** The helper that starts the runs' processes: while it is up, it widens pipes, and no perl is started for that. */
  launcher?: ProcessLauncher;
}

/**
 * Widens a chatty command's output pipe to 1 MiB. A pipe holds 64 KiB, so a command that
 * writes a flood of output waits for the daemon at every 64 KiB, and each wait is a switch
 * between the two: a 1 GB output went 1.35–1.6× as fast through a pipe of 1 MiB
 * (docs/benchmarks-record.md, section 4). node has no fcntl, so `perl` (part of every Debian and
 * Ubuntu system: perl-base is Essential) does it: the process helper that starts the runs'
 * processes (process-launcher.ts) while it is up, else a perl started for each pipe that passes
 * 1 MiB; nothing for the others. Where perl is missing (then no pipe is widened until the
 * daemon restarts), or Linux refuses (a lower pipe-max-size, or the user's pipe allowance
 * spent), the pipe stays as it is, and `onProblem` is told once for each of the two; nothing
 * else changes.
 */
export class PipeWidener {
  readonly #perl: string;
  readonly #mostAtOnce: number;
  readonly #launcher: ProcessLauncher | undefined;
  #widened = 0;
  #perlMissing = false;
  readonly #toldOf = new Set<string>();

  /** Told, once per kind of problem, when a pipe could not be widened. */
  onProblem: ((reason: string) => void) | undefined;

  constructor(options: PipeWidenerOptions = {}) {
    this.#perl = options.perl ?? 'perl';
    this.#mostAtOnce = options.mostAtOnce ?? MOST_WIDENED;
    this.#launcher = options.launcher;
  }

  /**
   * Widens the pipe `source` reads (its read end is `fd`) once `WIDEN_AFTER_BYTES` have come
   * through it; then, widened or not, calls `afterwards` (once, on Linux only), which may stop
   * reading `source` and close `fd`.
   */
  widenWhenChatty(source: Readable, fd: number, afterwards?: () => void): void {
    if (process.platform !== 'linux') return;
    let seen = 0;
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen < WIDEN_AFTER_BYTES) return;
      source.off('data', onData);
      const widening = !this.#perlMissing && !source.destroyed && this.#widened < this.#mostAtOnce ? this.#widen(source, fd) : Promise.resolve();
      // What comes afterwards (a handover to a capture thread) may not end the daemon either.
      if (afterwards) void widening.then(afterwards).catch(() => undefined);
    };
    source.on('data', onData);
  }

  /** Resolves once the pipe is widened or will not be (never rejects). */
  async #widen(source: Readable, fd: number): Promise<void> {
    this.#widened += 1;
    source.once('close', () => {
      this.#widened -= 1;
    });
    if (this.#launcher === undefined) return this.#startPerl(fd);
    try {
      const widened = await this.#launcher.widen(fd, WIDE_PIPE_BYTES);
      if (widened.ok) return;
      if ('refused' in widened) this.#tell('refused', `the process helper could not widen the pipe (${widened.refused}): ${REFUSED}`);
      // Not done by the helper: a perl of its own, while the descriptor is still this pipe's.
      else if (!source.destroyed) await this.#startPerl(fd);
    } catch {
      // Widening is an optimisation: nothing about it may end the daemon.
    }
  }

  /** Resolves once the perl that widens the pipe has ended, or could not start. */
  #startPerl(fd: number): Promise<void> {
    const perl = this.#perl;
    let child;
    try {
      child = spawn(perl, ['-e', SET_PIPE_SIZE, String(F_SETPIPE_SZ), String(WIDE_PIPE_BYTES)], {
        stdio: ['ignore', 'ignore', 'ignore', fd],
        env: pathOnlyEnvironment(),
      });
    } catch {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      child.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') this.#perlMissing = true;
        this.#tell(`start ${error.code ?? ''}`, `could not start ${perl} to widen the pipe: ${error.code === 'ENOENT' ? 'not found' : error.message}`);
        resolve();
      });
      child.on('exit', (code, signal) => {
        if (code !== 0) this.#tell('refused', `${perl} could not widen the pipe (${signal ?? `exit ${String(code)}`}): ${REFUSED}`);
        resolve();
      });
    });
  }

  #tell(kind: string, reason: string): void {
    if (this.#toldOf.has(kind)) return;
    this.#toldOf.add(kind);
    this.onProblem?.(reason);
  }
}
