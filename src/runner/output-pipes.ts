import { execFile } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One pipe, both ends open in the daemon: `read` is non-blocking, `write` (for the child) is blocking. */
export interface PipeEnds {
  read: number;
  write: number;
}

/** FIFOs made by one `mkfifo`: a process start is milliseconds of the event loop, so one makes many. */
const BATCH = 64;
/** Below this many, the next batch is made in the background. A run takes four (git's steps, the command). */
const LOW_WATER = 16;

export interface PipeMakerOptions {
  /** The program that makes FIFOs; `mkfifo` from PATH by default. */
  mkfifo?: string;
  /** Where the FIFOs' folder is made; the temporary folder by default. */
  parent?: string;
}

/**
 * Real pipes for a command's stdout and stderr. node gives a child a socket pair for each
 * 'pipe' of its stdio, and a socket is not a pipe: opening `/dev/stdout` or `/dev/stderr`
 * fails on one with ENXIO (`echo ... > /dev/stderr`, `tee /dev/stderr`, a program told to log
 * to /dev/stdout), where under a shell, cron or adnanh/webhook it works. A bare Node program
 * also copies a pipe's output faster than a socket's (docs/benchmarks.md, section 4). node has
 * no pipe(2), but a FIFO opened at both ends and then unlinked is an ordinary pipe. The FIFOs
 * are made ahead, a batch at a time, in a folder of the daemon's own (mode 0700), and each is
 * used once: a process left holding an old run's end can never write into a later run's log.
 * FIFOs made ahead can vanish while the daemon waits for pushes (a clean-up of old files in
 * the temporary folder, as systemd-tmpfiles does after ten days): then a new batch is made, in
 * a new folder if that went too.
 */
export class PipeMaker {
  readonly #options: PipeMakerOptions;
  #folder: string | undefined;
  readonly #ready: string[] = [];
  #making: Promise<void> | undefined;
  #made = 0;
  #unavailable: string | undefined;

  constructor(options: PipeMakerOptions = {}) {
    this.#options = options;
  }

  /**
   * Told once, when FIFOs turn out not to be available here. The first batch is made for the
   * first run, not at start: made at start, it took ~4 MB more of an idle daemon's memory.
   */
  onUnavailable: ((reason: string) => void) | undefined;

  /** Why FIFOs cannot be made here, once that is known: runs then get node's socket pairs. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  /** `count` pipes, or undefined when FIFOs cannot be made here (or, twice in a row, not opened). */
  async take(count: number): Promise<PipeEnds[] | undefined> {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      while (this.#ready.length < count && this.#unavailable === undefined) await this.#refill();
      if (this.#unavailable !== undefined) return undefined;
      const paths = this.#ready.splice(0, count);
      if (this.#ready.length < LOW_WATER) void this.#refill();
      const pipes: PipeEnds[] = [];
      try {
        for (const path of paths) pipes.push(openEnds(path));
        return pipes;
      } catch {
        // Gone (see above): the rest of the batch went the same way.
        closePipes(pipes);
        this.#ready.length = 0;
      } finally {
        for (const path of paths) unlinkQuietly(path);
      }
    }
    return undefined;
  }

  #refill(): Promise<void> {
    return (this.#making ??= this.#makeBatch().finally(() => {
      this.#making = undefined;
    }));
  }

  async #makeBatch(): Promise<void> {
    let failed: string | undefined;
    for (let attempt = 0; attempt < 2; attempt += 1) {
      if (this.#folder === undefined || !existsSync(this.#folder)) {
        try {
          this.#folder = createFolder(this.#options.parent ?? tmpdir());
        } catch (error) {
          this.#giveUp(`could not create a folder for FIFOs: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
          return;
        }
      }
      const folder = this.#folder;
      const paths = Array.from({ length: BATCH }, () => join(folder, `p${String((this.#made += 1))}`));
      failed = await new Promise<string | undefined>((resolve) => {
        execFile(this.#options.mkfifo ?? 'mkfifo', ['-m', '600', '--', ...paths], (error, _stdout, stderr) => resolve(error ? stderr.trim() || error.message : undefined));
      });
      if (failed === undefined) {
        this.#ready.push(...paths);
        return;
      }
      for (const path of paths) unlinkQuietly(path);
      // Only a folder that vanished meanwhile is worth a second try.
      if (existsSync(folder)) break;
    }
    this.#giveUp(`mkfifo failed: ${failed ?? ''}`);
  }

  #giveUp(reason: string): void {
    if (this.#unavailable !== undefined) return;
    this.#unavailable = reason;
    this.onUnavailable?.(reason);
  }
}

/** A folder only the daemon can use, removed when the daemon exits. */
function createFolder(parent: string): string {
  const folder = mkdtempSync(join(parent, 'deployhook-pipes-'));
  process.once('exit', () => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

/**
 * The read end first, without waiting for a writer; then the write end, which a reader lets
 * open at once. Both descriptors are close-on-exec (libuv opens every file so): only the
 * child they are given to gets one.
 */
function openEnds(path: string): PipeEnds {
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    return { read, write: openSync(path, constants.O_WRONLY) };
  } catch (error) {
    closeSync(read);
    throw error;
  }
}

export function closePipes(pipes: readonly PipeEnds[], ends: ReadonlyArray<keyof PipeEnds> = ['read', 'write']): void {
  for (const pipe of pipes) for (const end of ends) closeQuietly(pipe[end]);
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}
