import { spawn, type ChildProcess } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { constants } from 'node:os';
import { signalGroup, signalProcess } from './kill-group.js';
import { pathOnlyEnvironment } from './path-only-env.js';
import { F_SETPIPE_SZ, HELPER_SCRIPT } from './process-helper-script.js';

/**
 * The user and groups a process runs as (`run_as`). `groups` are all the groups it has, `gid`
 * among them, as a login gives them; without it, `gid` alone.
 */
export interface ProcessUser {
  uid: number;
  gid: number;
  groups?: readonly number[] | undefined;
}

/**
 * The user's groups as the perl `become_user` takes them (PERL_USER_SUBS): the group, then every
 * group the process is to have, space separated.
 */
export function becomeUserGroups(user: ProcessUser): string {
  return [user.gid, ...(user.groups ?? [user.gid])].join(' ');
}

/** What starting a process needs; stdout and stderr are the daemon's descriptors of the pipes' write ends. */
export interface LaunchRequest {
  program: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  user?: ProcessUser | undefined;
  stdout: number;
  stderr: number;
}

/** How a started process ended; `lost` when its end can no longer be known (the helper ended first). */
export interface LaunchedExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  lost?: string;
}

/**
 * What became of a request the helper carries out without starting a process: done; refused by
 * Linux (an errno name); or not done by the helper, for the caller to do it another way.
 */
export type HelperDone = { ok: true } | { ok: false; refused: string } | { ok: false; unavailable: string };

/**
 * What became of a request to widen a pipe; not done when no helper is up, it ended, or it
 * could not reach that pipe (the caller widens it another way if the pipe is still open).
 */
export type Widened = HelperDone;

/**
 * What became of a request to make FIFOs; refused names the errno for the first path that
 * failed; not done when the helper cannot be used or it ended (the caller makes them another way).
 */
export type MadeFifos = HelperDone;

export type Launched =
  | { ok: true; pid: number; exited: Promise<LaunchedExit> }
  /** The program could not be started: an error like node's, with an errno `code`. */
  | { ok: false; error: NodeJS.ErrnoException }
  /** The helper cannot start processes now: start this one some other way. */
  | { ok: false; unavailable: string };

const STAGES: Record<string, string> = { '0': 'fork', '1': 'set up its output and session', '2': 'enter its working folder', '3': 'switch to its user', '4': 'exec', '5': "take on all of its user's groups" };
const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));
/** The first name of each number, as node names a signal (SIGABRT, not its alias SIGIOT). */
/**
 * A signal node has no name for: Linux's real-time signals (glibc's SIGRTMIN is 34, SIGRTMAX
 * 64), named as `kill -l` names them; any other by its number.
 */
function signalName(signal: number): NodeJS.Signals {
  const name = signal >= 34 && signal <= 64 ? (signal - 34 <= 15 ? `SIGRTMIN+${signal - 34}` : `SIGRTMAX-${64 - signal}`) : `signal ${signal}`;
  return name.replace('SIGRTMIN+0', 'SIGRTMIN').replace('SIGRTMAX-0', 'SIGRTMAX') as NodeJS.Signals;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>();
for (const [name, value] of Object.entries(constants.signals)) if (!SIGNAL_NAMES.has(value)) SIGNAL_NAMES.set(value, name as NodeJS.Signals);

/**
 * Starts the runs' processes from a small perl process of its own (~7 MB), not from the daemon.
 * node's `spawn` forks the daemon: the fork copies the page tables of its memory outside V8's
 * heap and holds the event loop 2–6 ms per start, which under a flood of pushes is 12–15 % of
 * the main thread, and in push to command is on the way to the first line (docs/benchmarks-record.md,
 * section 1, "Where a start is made"). The helper forks itself instead, with what `spawn`
 * would do (`detached`: a new session and process group; stdin from /dev/null; the user and
 * group of `run_as`; signals at their defaults), and reports each process's end. A `run_as`
 * process also gets the user's other groups, which `spawn` drops. The daemon still signals
 * the process groups itself.
 *
 * The helper is started with the first process. Where it cannot run (no perl, no /proc), it
 * is `unavailable` and processes are started with node's `spawn`, as before (a `run_as`
 * process then has its one group). If it ends while
 * processes it started run, their ends are lost: each `exited` resolves with `lost`, and the
 * caller stops the process group. A start under way then fails, and what the helper had
 * forked for it is killed. The next start starts a new helper.
 */
export class ProcessLauncher {
  readonly #perl: string;
  #helper: ChildProcess | undefined;
  #ready: Promise<boolean> | undefined;
  #unavailable: string | undefined;
  #nextId = 1;
  #input = '';
  /** Starts asked for and not yet answered, with the pid once the helper has forked. */
  readonly #starting = new Map<string, { settle: (launched: Launched) => void; pid?: number }>();
  readonly #running = new Map<number, (exit: LaunchedExit) => void>();
  /** Requests that start no process (pipes to widen, FIFOs to make) not yet answered, by id. */
  readonly #answering = new Map<string, (done: HelperDone) => void>();

  /** Told once when the helper cannot be used, and each time it ends while in use. */
  onProblem: ((reason: string) => void) | undefined;

  constructor(options: { perl?: string } = {}) {
    this.#perl = options.perl ?? 'perl';
  }

  /** Why processes are started with node's `spawn` instead, if they are. */
  get unavailable(): string | undefined {
    return this.#unavailable;
  }

  async launch(request: LaunchRequest): Promise<Launched> {
    const pipes = `${pipeIdentity(request.stdout)}:${pipeIdentity(request.stderr)}`;
    const fields = [request.cwd, request.user ? String(request.user.uid) : '', request.user ? becomeUserGroups(request.user) : '', String(request.stdout), String(request.stderr), pipes, String(1 + request.args.length), request.program, ...request.args, ...Object.entries(request.env).map(([name, value]) => `${name}=${value}`)];
    // The helper's fields are separated by NUL. node's spawn refuses a NUL with a message of its own: it is left to say so.
    if (fields.some((field) => field.includes('\0'))) return { ok: false, unavailable: 'a NUL character in the command, its folder or its environment' };
    // No helper to use (or it ended meanwhile): this start goes through node's spawn, and the next one starts a new helper.
    const helper = await this.#helperStarted();
    if (typeof helper === 'string') return { ok: false, unavailable: helper };
    const id = String(this.#nextId++);
    return new Promise<Launched>((resolve) => {
      this.#starting.set(id, { settle: resolve });
      send(helper, [id, ...fields]);
    });
  }

  /**
   * Sets the capacity of the pipe whose read end is the daemon's `fd` to `bytes`, through the
   * helper if it is up (it is never started for this): no process is started for it.
   */
  widen(fd: number, bytes: number): Promise<Widened> {
    const helper = this.#liveHelper();
    if (this.#unavailable !== undefined) return Promise.resolve({ ok: false, unavailable: this.#unavailable });
    if (this.#ready === undefined || !helper) return Promise.resolve({ ok: false, unavailable: 'the process helper is not running' });
    let pipe: string;
    try {
      pipe = pipeIdentity(fd);
    } catch (error) {
      return Promise.resolve({ ok: false, unavailable: `the pipe could not be looked at: ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
    }
    const id = String(this.#nextId++);
    return this.#ready.then((ready) => {
      if (!ready || this.#helper !== helper) return { ok: false, unavailable: 'the process helper ended' };
      return new Promise<Widened>((resolve) => {
        this.#answering.set(id, resolve);
        send(helper, ['widen', id, String(fd), pipe, String(bytes)]);
      });
    });
  }

  /**
   * Makes a FIFO at each of `paths` (mode 0600), through the helper, which is started for it
   * if need be: the daemon forks no `mkfifo`.
   */
  async makeFifos(paths: readonly string[]): Promise<MadeFifos> {
    if (paths.some((path) => path.includes('\0'))) return { ok: false, unavailable: 'a NUL character in a path' };
    const helper = await this.#helperStarted();
    if (typeof helper === 'string') return { ok: false, unavailable: helper };
    const id = String(this.#nextId++);
    return new Promise<MadeFifos>((resolve) => {
      this.#answering.set(id, resolve);
      send(helper, ['fifos', id, ...paths]);
    });
  }

  /** The helper, started if need be, or why it cannot be used. */
  async #helperStarted(): Promise<ChildProcess | string> {
    if (this.#unavailable !== undefined) return this.#unavailable;
    if (!(await (this.#ready ??= this.#start()))) return this.#unavailable ?? 'the process helper ended';
    return this.#liveHelper() ?? 'the process helper ended';
  }

  /** The helper, while it is there to be written to. */
  #liveHelper(): ChildProcess | undefined {
    const helper = this.#helper;
    return helper?.stdin && helper.exitCode === null && helper.signalCode === null ? helper : undefined;
  }

  #start(): Promise<boolean> {
    if (process.platform !== 'linux') {
      this.#disable('starting processes from a helper needs Linux /proc');
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      let ready = false;
      let helper: ChildProcess;
      try {
        helper = spawn(this.#perl, ['-e', HELPER_SCRIPT, String(process.pid), String(F_SETPIPE_SZ)], { stdio: ['pipe', 'pipe', 'inherit'], env: pathOnlyEnvironment() });
      } catch (error) {
        this.#disable(`could not start ${this.#perl}: ${(error as Error).message}`);
        resolve(false);
        return;
      }
      this.#helper = helper;
      this.#input = '';
      helper.stdin?.on('error', () => undefined);
      helper.on('error', (error: NodeJS.ErrnoException) => {
        if (ready) return;
        this.#disable(`could not start ${this.#perl}: ${error.code === 'ENOENT' ? 'not found' : error.message}`);
        resolve(false);
      });
      helper.stdout?.setEncoding('latin1');
      helper.stdout?.on('data', (chunk: string) => {
        const lines = (this.#input + chunk).split('\n');
        this.#input = lines.pop() ?? '';
        for (const line of lines) {
          if (line === 'ready' && !ready) {
            ready = true;
            resolve(true);
          } else this.#answer(line);
        }
      });
      // 'close', not 'exit': every line the helper wrote before it ended is read first.
      helper.once('close', (code, signal) => {
        const why = `the process helper (${this.#perl}) ended (${signal ?? `exit ${String(code)}`})`;
        if (this.#helper === helper) {
          this.#helper = undefined;
          this.#ready = undefined;
        }
        if (!ready) {
          this.#disable(why);
          resolve(false);
          return;
        }
        this.onProblem?.(why);
        // A start under way may have started the process already: it is stopped, and not started again another way.
        for (const { settle, pid } of this.#starting.values()) {
          if (pid !== undefined) killStarting(pid);
          settle({ ok: false, error: Object.assign(new Error(`${why} while starting it${pid !== undefined ? '; what it had started was stopped' : ''}`), { code: 'EHELPER' }) });
        }
        this.#starting.clear();
        for (const settle of this.#running.values()) settle({ exitCode: null, signal: null, lost: why });
        this.#running.clear();
        for (const settle of this.#answering.values()) settle({ ok: false, unavailable: why });
        this.#answering.clear();
      });
      // The helper must not keep the daemon's event loop alive on its own.
      helper.unref();
      (helper.stdout as unknown as { unref?: () => void } | null)?.unref?.();
      (helper.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    });
  }

  #answer(line: string): void {
    const [kind, first = '', second = '', third = ''] = line.split(' ');
    if (kind === 'forked') {
      const starting = this.#starting.get(first);
      if (starting) starting.pid = Number(second);
    } else if (kind === 'started') {
      const pid = Number(second);
      const settle = this.#starting.get(first)?.settle;
      this.#starting.delete(first);
      const exited = new Promise<LaunchedExit>((resolve) => this.#running.set(pid, resolve));
      settle?.({ ok: true, pid, exited });
    } else if (kind === 'failed') {
      const settle = this.#starting.get(first)?.settle;
      this.#starting.delete(first);
      const code = errnoName(third);
      const why = `could not ${STAGES[second] ?? 'start'}: ${code}`;
      // The helper's own part failed (the pipes through /proc, the session): node's spawn does it instead from now on.
      if (second === '1') settle?.({ ok: false, unavailable: this.#disable(`the process helper ${why}`) });
      // The helper could not fork now (EAGAIN, EMFILE: a passing shortage): node's spawn tries this one, and says why if it fails too.
      else if (second === '0') settle?.({ ok: false, unavailable: `the process helper ${why}` });
      // `syscall` as node names a failed call: the working folder's (stage 2) is told apart from the program's.
      else settle?.({ ok: false, error: Object.assign(new Error(why), { code, ...(second === '2' ? { syscall: 'chdir' } : {}) }) });
    } else if (kind === 'widened' || kind === 'fifos') {
      const settle = this.#answering.get(first);
      this.#answering.delete(first);
      // `widened <id> <call> <errno>`; `fifos <id> <errno>`.
      const errno = kind === 'widened' ? third : second;
      if (kind === 'widened' && second === 'open') settle?.({ ok: false, unavailable: `the process helper could not open the pipe: ${errnoName(errno)}` });
      else settle?.(errno === '0' ? { ok: true } : { ok: false, refused: errnoName(errno) });
    } else if (kind === 'exited') {
      const pid = Number(first);
      const status = Number(second);
      const settle = this.#running.get(pid);
      this.#running.delete(pid);
      const signal = status & 0x7f;
      settle?.(signal === 0 ? { exitCode: status >> 8, signal: null } : { exitCode: null, signal: SIGNAL_NAMES.get(signal) ?? signalName(signal) });
    }
  }

  /** From now on processes are started with node's spawn; returns why. */
  #disable(reason: string): string {
    if (this.#unavailable === undefined) {
      this.#unavailable = reason;
      this.onProblem?.(reason);
    }
    return this.#unavailable;
  }
}

/** An errno the helper reported, by node's name for it (ENOENT), else by number. */
function errnoName(errno: string): string {
  return ERRNO_NAMES.get(Number(errno)) ?? `errno ${errno}`;
}

/** A request to the helper: its length, a newline, then its fields separated by NUL. */
function send(helper: ChildProcess, fields: readonly string[]): void {
  const body = Buffer.from(fields.join('\0'));
  helper.stdin?.write(Buffer.concat([Buffer.from(`${body.length}\n`), body]));
}

/** The `dev:ino` of the pipe a descriptor holds, which the helper checks after it opens the pipe through /proc. */
function pipeIdentity(fd: number): string {
  const { dev, ino } = fstatSync(fd, { bigint: true });
  return `${dev}:${ino}`;
}

/**
 * Stops a process the helper had forked when it ended before answering: in a group of its own
 * once it has called setsid, else alone. Its helper has just ended, so the pid is not yet
 * anyone else's (a child that finds its helper gone before its exec fails by itself).
 */
function killStarting(pid: number): void {
  signalGroup(pid, 'SIGKILL');
  signalProcess(pid, 'SIGKILL');
}
