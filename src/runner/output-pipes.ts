import { execFile } from 'node:child_process';
import { closeSync, constants, fchownSync, fstatSync, lstatSync, mkdtempSync, openSync, readdirSync, rmSync, unlinkSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processExists } from './kill-group.js';
import type { ProcessLauncher } from './process-launcher.js';

/** One pipe, both ends open in the daemon: `read` is non-blocking, `write` (for the child) is blocking. */
export interface PipeEnds {
  read: number;
  write: number;
}

/** FIFOs made by one `mkfifo`: a process start is milliseconds of the event loop, so one makes many. */
const BATCH = 64;
/** Below this many, the next batch is made in the background. A run takes four (git's steps, the command). */
const LOW_WATER = 16;
/** After `mkfifo` failed, runs get socket pairs this long before it is tried again. */
const RETRY_AFTER_MS = 10_000;
const PREFIX = 'deployhook-pipes-';

export interface PipeMakerOptions {
  /** The program that makes FIFOs where the helper cannot; `mkfifo` from PATH by default. */
  mkfifo?: string;
  /**
   * The helper that starts the runs' processes: it makes the FIFOs, so the daemon forks no
   * `mkfifo` (a fork of the daemon holds its event loop for milliseconds). Where it cannot be
   * used, `mkfifo` makes them.
   */
  launcher?: Pick<ProcessLauncher, 'makeFifos'>;
  /** Where the FIFOs' folder is made; the temporary folder by default. */
  parent?: string;
}

/** The folder FIFOs are made in, as it was when this process created it. */
interface Folder {
  path: string;
  dev: number;
  ino: number;
}

/**
 * Real pipes for a command's stdout and stderr. node gives a child a socket pair for each
 * 'pipe' of its stdio, and a socket is not a pipe: opening `/dev/stdout` or `/dev/stderr`
 * fails on one with ENXIO (`echo ... > /dev/stderr`, `tee /dev/stderr`, a program told to log
 * to /dev/stdout), where under a shell, cron or adnanh/webhook it works. A bare Node program
 * also copies a pipe's output faster than a socket's (docs/benchmarks-record.md, section 4). node has
 * no pipe(2), but a FIFO opened at both ends and then unlinked is an ordinary pipe.
 *
 * The FIFOs are made ahead, a batch at a time, in a folder of the daemon's own (mkdtemp, mode
 * 0700), and each is used once: a process left holding an old run's end can never write into
 * a later run's log. The folder sits in a shared place (the temporary folder), so nothing in
 * it is trusted by name alone: before each batch the folder must still be the one this
 * process made (same device and inode, a folder owned by it, 0700), else a new one is made and
 * the old paths are forgotten; a FIFO is opened without following links, and both ends must be
 * the same FIFO, owned by this process's user. FIFOs made ahead can vanish while the daemon
 * waits for pushes (systemd-tmpfiles removes old files after ten days): the batch is then made
 * again. Folders of processes that are gone (a `kill -9`) are removed when a new one is made.
 */
export class PipeMaker {
  readonly #options: PipeMakerOptions;
  #folder: Folder | undefined;
  readonly #ready: string[] = [];
  #making: Promise<void> | undefined;
  #made = 0;
  #unavailable: string | undefined;
  #retryAt = 0;

  constructor(options: PipeMakerOptions = {}) {
    this.#options = options;
  }

  /**
   * Told when FIFOs cannot be made (runs then get node's socket pairs): once per stretch of
   * failures. The first batch is made for the first run, not at start: made at start, it took
   * ~4 MB more of an idle daemon's memory.
   */
  onUnavailable: ((reason: string) => void) | undefined;

  /** Why FIFOs could not be made the last time they were tried, while that stands. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  /** `count` pipes, or undefined when FIFOs cannot be made (or, twice in a row, not opened) now. */
  async take(count: number): Promise<PipeEnds[] | undefined> {
    for (let attempt = 0; attempt < 2; attempt += 1) {
      while (this.#ready.length < count && !this.#failing()) await this.#refill();
      if (this.#ready.length < count) return undefined;
      const folder = this.#folder;
      const paths = this.#ready.splice(0, count);
      // After this turn: the start these pipes are for reaches the helper ahead of the batch.
      if (this.#ready.length < LOW_WATER) {
        setImmediate(() => {
          if (this.#ready.length < LOW_WATER) void this.#refill();
        });
      }
      const pipes: PipeEnds[] = [];
      try {
        for (const path of paths) pipes.push(openEnds(path));
        return pipes;
      } catch {
        // Gone or not ours (see above): the rest of the batch is not used either.
        closePipes(pipes);
        this.#ready.length = 0;
        this.#folder = undefined;
      } finally {
        // Removed only from a folder that is still ours.
        if (folder !== undefined && isOurs(folder)) for (const path of paths) unlinkQuietly(path);
      }
    }
    return undefined;
  }

  #failing(): boolean {
    return this.#unavailable !== undefined && performance.now() < this.#retryAt;
  }

  #refill(): Promise<void> {
    if (this.#failing()) return Promise.resolve();
    return (this.#making ??= this.#makeBatch().finally(() => {
      this.#making = undefined;
    }));
  }

  async #makeBatch(): Promise<void> {
    let folder: Folder;
    try {
      folder = this.#folder !== undefined && isOurs(this.#folder) ? this.#folder : this.#newFolder();
    } catch (error) {
      this.#fail(`could not create a folder for FIFOs: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return;
    }
    const paths = Array.from({ length: BATCH }, () => join(folder.path, `p${String((this.#made += 1))}`));
    const failed = await this.#make(paths, folder);
    if (failed !== undefined) {
      if (isOurs(folder)) for (const path of paths) unlinkQuietly(path);
      this.#fail(`mkfifo failed: ${failed}`);
      return;
    }
    this.#unavailable = undefined;
    // A folder replaced meanwhile: these paths are not used (the next take makes a new one).
    if (this.#folder === folder) this.#ready.push(...paths);
  }

  /** Makes the FIFOs; undefined when made, else why not. */
  async #make(paths: readonly string[], folder: Folder): Promise<string | undefined> {
    const made = await this.#options.launcher?.makeFifos(paths);
    if (made?.ok === true) return undefined;
    if (made !== undefined && 'refused' in made) return made.refused;
    // A helper that ended partway may have made some of them: mkfifo would fail on those.
    if (made !== undefined && isOurs(folder)) for (const path of paths) unlinkQuietly(path);
    return new Promise<string | undefined>((resolve) => {
      execFile(this.#options.mkfifo ?? 'mkfifo', ['-m', '600', '--', ...paths], (error, _stdout, stderr) => resolve(error ? stderr.trim() || error.message : undefined));
    });
  }

  #newFolder(): Folder {
    this.#ready.length = 0;
    const parent = this.#options.parent ?? tmpdir();
    removeAbandoned(parent);
    const path = mkdtempSync(join(parent, `${PREFIX}${String(process.pid)}-`));
    const { dev, ino } = lstatSync(path);
    const folder = { path, dev, ino };
    removeAtExit(folder);
    this.#folder = folder;
    return folder;
  }

  #fail(reason: string): void {
    this.#retryAt = performance.now() + RETRY_AFTER_MS;
    if (this.#unavailable !== undefined) return;
    this.#unavailable = reason;
    this.onUnavailable?.(reason);
  }
}

/** Folders made by this process, removed when it exits if they are still its own. */
const madeFolders = new Set<Folder>();
let removingAtExit = false;

/** One `exit` listener for every folder (and every PipeMaker), not one each. */
function removeAtExit(folder: Folder): void {
  if (!removingAtExit) {
    removingAtExit = true;
    process.once('exit', () => {
      for (const made of madeFolders) if (isOurs(made)) rmSync(made.path, { recursive: true, force: true });
    });
  }
  // A folder that is no longer ours (removed, replaced) has nothing left to remove.
  for (const made of madeFolders) if (!isOurs(made)) madeFolders.delete(made);
  madeFolders.add(folder);
}

/** Still the folder this process made: same device and inode, a folder (not a link), its own, 0700. */
function isOurs(folder: Folder): boolean {
  let stats: Stats;
  try {
    stats = lstatSync(folder.path);
  } catch {
    return false;
  }
  return stats.isDirectory() && stats.dev === folder.dev && stats.ino === folder.ino && ownedHere(stats) && (stats.mode & 0o777) === 0o700;
}

function ownedHere(stats: Stats): boolean {
  return stats.uid === process.geteuid?.();
}

/**
 * Removes the FIFO folders this user's processes left when they died without cleaning up (the
 * folder's name carries the pid). A folder whose pid is alive is left alone, whoever it is now.
 */
function removeAbandoned(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent).filter((name) => name.startsWith(PREFIX));
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/^(\d+)-/.exec(name.slice(PREFIX.length))?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || processExists(pid)) continue;
    const path = join(parent, name);
    try {
      const stats = lstatSync(path);
      if (stats.isDirectory() && ownedHere(stats)) rmSync(path, { recursive: true, force: true });
    } catch {
      // gone meanwhile, or not ours to remove
    }
  }
}

/**
 * The read end first, without waiting for a writer; then the write end, which a reader lets
 * open at once. Neither open follows a link, and both must be the same FIFO, owned by this
 * process's user. Both descriptors are close-on-exec (libuv opens every file so): only the
 * child they are given to gets one. Throws when any of that fails.
 */
function openEnds(path: string): PipeEnds {
  const read = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  let write: number | undefined;
  try {
    write = openSync(path, constants.O_WRONLY | constants.O_NOFOLLOW);
    const [readStats, writeStats] = [fstatSync(read), fstatSync(write)];
    if (!readStats.isFIFO() || !ownedHere(readStats) || readStats.dev !== writeStats.dev || readStats.ino !== writeStats.ino) {
      throw new Error(`Expected ${path} to be a FIFO of this process's user`);
    }
    return { read, write };
  } catch (error) {
    closeSync(read);
    if (write !== undefined) closeSync(write);
    throw error;
  }
}

/**
 * The read end `fd` of a pipe opened once more (non-blocking), through `/proc/self/fd`: a
 * descriptor of the same pipe that outlives `fd`, for another reader to go on with. The caller
 * must still hold `fd` (its socket open), so that the number is still that pipe's. Undefined
 * when the open fails or gives anything but a FIFO.
 */
export function reopenReadEnd(fd: number): number | undefined {
  let again: number;
  try {
    again = openSync(`/proc/self/fd/${String(fd)}`, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (fstatSync(again).isFIFO()) return again;
  } catch {
    // closed below
  }
  closeSync(again);
  return undefined;
}

/** Gives the pipe to the user a command runs as, so that it may open `/dev/stdout` again. */
export function givePipes(pipes: readonly PipeEnds[], user: { uid: number; gid: number }): void {
  for (const { write } of pipes) fchownSync(write, user.uid, user.gid);
}

export function closePipes(pipes: readonly PipeEnds[], ends: ReadonlyArray<keyof PipeEnds> = ['read', 'write']): void {
  for (const pipe of pipes) for (const end of ends) closeQuietly(pipe[end]);
}

/** Closes a descriptor that may be closed already. */
export function closeQuietly(fd: number): void {
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
