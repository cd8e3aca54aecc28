import { spawn, type ChildProcess } from 'node:child_process';
import { timerDelay } from '../config/duration.js';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { DeployhookError } from '../errors.js';
import { terminateGroup, waitForGroupExit } from './kill-group.js';
import { killGroupOnExit } from './kill-on-exit.js';
import { closePipes, givePipes, PipeMaker, reopenReadEnd, type PipeEnds } from './output-pipes.js';
import { PipeWidener } from './pipe-widener.js';
import { ProcessLauncher, type LaunchedExit, type ProcessUser } from './process-launcher.js';
import { describeStartError } from './start-error.js';
import { waitForOutputEnd } from './wait-for-output.js';
import { tagOutputChannel } from '../log/mask-secrets.js';

/**
 * After the main process exits, how long the rest of its group may take to finish on its
 * own before it counts as left over and is terminated: enough for a background job that is
 * finishing anyway, short enough that a daemonised grandchild holding stdout open does not
 * hold up the run. Once the group is gone, a pipe that stays quiet this long is held by a
 * process outside the group and is given up on.
 */
const LEFTOVER_MOMENT_MS = 500;
/** A command that ended within this long of its start has its session's leftovers looked for among the pids made since (see sessionGroups). */
const RECENT_SESSION_MS = 10_000;

/**
 * Once the group is gone, how long its output is read at most: what it wrote before it ended
 * takes milliseconds; a process that left the group and keeps writing would otherwise hold the
 * run, and its job, until the timeout.
 */
const ESCAPED_OUTPUT_MS = 5_000;

export interface CommandOptions {
  /** From config; argv[0] is the program. Run without a shell. */
  argv: readonly string[];
  cwd: string;
  /** The complete environment: nothing of the daemon's own is added. */
  env: Record<string, string>;
  /**
   * stdout and stderr both go here, interleaved as they are read (a read takes what a pipe
   * holds: up to 64 KiB, or 1 MiB from a widened pipe). It is not ended.
   */
  output: Writable;
  /** After this the whole process group gets SIGTERM. 0 means no time is left: the command is not started. */
  timeoutMs: number;
  /** Grace period between SIGTERM and SIGKILL. */
  killAfterMs: number;
  /** Cancels the run with the same kill sequence as a timeout. */
  signal?: AbortSignal;
  /** Called once the command has started, with its process group id (= its pid). */
  onStart?: (pgid: number) => void;
  /** Run as this user and group (the daemon runs as root). */
  user?: ProcessUser | undefined;
  /**
   * Whether leftovers are also looked for in the command's session once its group is empty
   * (a scan of /proc between the end and the result: 1–3 ms, or for a command that ended
   * within 10 s of its start, of the pids made since): true by default; git's steps,
   * whose end the command waits for and which start no jobs, leave it out.
   */
  sessionLeftovers?: boolean;
  /** Where stdout's and stderr's pipes come from; the daemon's shared maker by default. */
  pipes?: PipeMaker;
  /** What widens a chatty command's pipes; the daemon's shared widener by default. */
  widener?: PipeWidener;
  /** What starts the process; the daemon's shared helper by default, node's `spawn` with null. */
  launcher?: ProcessLauncher | null;
  /** What reads a chatty command's pipes instead of the event loop (the run log's capture thread); none by default. */
  takePipes?: PipeTaker | undefined;
}

/** One of a command's output pipes to take: its read end, and the channel its output is masked in. */
export interface PipeToTake {
  fd: number;
  channel: string;
}

/** Takes a chatty command's pipes over from the event loop (run-log.ts, capture-thread.ts). */
export interface PipeTaker {
  /** Whether it can take pipes now. */
  ready(): boolean;
  /**
   * Reads the pipes (descriptors it then owns) into the output from now on. Returns one stream
   * per pipe that emits 'activity' while output comes, ends once all of it is in the output, and
   * stops the reading when destroyed.
   */
  take(pipes: PipeToTake[]): Readable[];
}

/** Starts every command and git `sh` from a small process of its own, so the daemon does not fork. */
export const processLauncher = new ProcessLauncher();

/**
 * The pipes every command and every git `sh` writes its output into, their FIFOs made by the
 * helper above. When FIFOs cannot be made, node's socket pairs serve instead (and
 * `/dev/stdout` cannot be opened).
 */
export const outputPipes = new PipeMaker({ launcher: processLauncher });

/** Widens the pipes of every command and git `sh` that floods them (at most 8 at once, daemon-wide), through the helper above while it is up. */
export const pipeWidener = new PipeWidener({ launcher: processLauncher });

export interface CommandResult {
  /** null when killed by a signal or when it could not start. */
  exitCode: number | null;
  /** The signal that ended the main process, if any. */
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  cancelled: boolean;
  /** Processes of the group still alive after the main process exited; they were terminated. */
  leftovers: boolean;
  /** The output pipes were still held open once the group was gone: by a process that left it (`setsid`, a daemon), left running. */
  escaped: boolean;
  /** Why the command could not start (e.g. ENOENT: "command not found: foo"), else undefined. */
  startError?: string;
  /** Why the command's end is unknown (the helper that started it ended first); its group was stopped. */
  lost?: string;
  durationMs: number;
}

const ignore = () => {};

function invalid(message: string): DeployhookError {
  return new DeployhookError('INVALID_COMMAND_OPTIONS', message);
}

function checkOptions({ argv, timeoutMs, killAfterMs }: CommandOptions): void {
  if (argv.length === 0) throw invalid('Expected `argv` to have at least one element, got an empty list');
  if (argv[0] === '') throw invalid('Expected `argv[0]` to be the program to run, got an empty string');
  for (const [name, value] of [['timeoutMs', timeoutMs], ['killAfterMs', killAfterMs]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw invalid(`Expected the \`${name}\` option to be a non-negative integer, got \`${String(value)}\``);
    }
  }
}

type Started = { ok: true; sources: [Readable, Readable]; pgid: number; exited: Promise<LaunchedExit> } | { ok: false; error: Promise<unknown> };

/** Ignores what a command's pipes report after its start (a pipe torn down): what ends a run is its exit and its pipes' end. */
function readers(pipes: readonly PipeEnds[]): [Socket, Socket] {
  const [stdout, stderr] = pipes.map(({ read }) => new Socket({ fd: read, readable: true, writable: false }).on('error', ignore));
  return [stdout as Socket, stderr as Socket];
}

/**
 * The user a command runs as owns its pipes, or it could not open /dev/stdout again: done once,
 * before the command is started either way. Its failure is the start's (the pipes are closed).
 */
function pipesGiven(pipes: PipeEnds[] | undefined, user: CommandOptions['user']): Started | undefined {
  if (!pipes || !user) return undefined;
  try {
    givePipes(pipes, user);
    return undefined;
  } catch (error) {
    closePipes(pipes);
    return { ok: false, error: Promise.resolve(error) };
  }
}

/**
 * Starts the command from the helper (process-launcher.ts): the daemon does not fork, and the
 * helper does what `spawn` does below. Falls back to `spawn` when the helper is unavailable.
 */
async function launch(program: string, args: readonly string[], options: CommandOptions, pipes: PipeEnds[], launcher: ProcessLauncher): Promise<Started | undefined> {
  const [stdout, stderr] = pipes;
  if (!stdout || !stderr) return undefined;
  const { cwd, env, user } = options;
  const launched = await launcher.launch({ program, args, cwd, env, user, stdout: stdout.write, stderr: stderr.write });
  if (!launched.ok && 'unavailable' in launched) return undefined;
  // The child has its own ends now (or none): the daemon's copies are closed, so the read ends see the output's end.
  closePipes(pipes, ['write']);
  if (!launched.ok) {
    closePipes(pipes, ['read']);
    return { ok: false, error: Promise.resolve(launched.error) };
  }
  return { ok: true, sources: readers(pipes), pgid: launched.pid, exited: launched.exited };
}

/**
 * Starts the command with node's own `spawn`, where the helper cannot: execa's work around a
 * start held the event loop ~0.6 ms longer (1.0–1.2 against 1.6–1.9 ms per start at ~90 MB
 * resident, in one loop).
 * detached: the command leads a new process group (pgid = pid), so the group can be
 * signalled as a whole. stdout and stderr are pipes (output-pipes.ts): the child gets their
 * write ends, and the daemon's copies are closed at once, so the read ends see the end of
 * the output when the command's processes have closed theirs. A failed start is reported by
 * `spawn` either at once (thrown) or as an 'error' event with no pid (a missing program or
 * working folder).
 */
function start(program: string, args: readonly string[], { cwd, env, user }: CommandOptions, pipes: PipeEnds[] | undefined): Started {
  let subprocess: ChildProcess;
  let sources: Socket[] = [];
  try {
    if (pipes) sources = readers(pipes);
    const stdio = pipes ? (['ignore', pipes[0]?.write, pipes[1]?.write] as const) : (['ignore', 'pipe', 'pipe'] as const);
    subprocess = spawn(program, args, { cwd, env, detached: true, stdio: [...stdio], ...(user ? { uid: user.uid, gid: user.gid } : {}) });
  } catch (error) {
    // A reader closes its read end; the ends no reader was made for are closed here.
    for (const source of sources) source.destroy();
    if (pipes) {
      closePipes(pipes, ['write']);
      closePipes(pipes.slice(sources.length), ['read']);
    }
    return { ok: false, error: Promise.resolve(error) };
  }
  if (pipes) closePipes(pipes, ['write']);
  const { pid } = subprocess;
  const [stdout, stderr] = pipes ? sources : [subprocess.stdout, subprocess.stderr];
  if (pid === undefined || !stdout || !stderr) {
    stdout?.destroy();
    stderr?.destroy();
    return { ok: false, error: new Promise((resolve) => subprocess.once('error', resolve)) };
  }
  // An error event after the start (a pipe torn down) must not crash the daemon; `readers` made pipes' sources so.
  subprocess.on('error', ignore);
  if (!pipes) for (const source of [stdout, stderr]) source.on('error', ignore);
  const exited = new Promise<LaunchedExit>((resolve) => subprocess.once('exit', (exitCode, signal) => resolve({ exitCode, signal })));
  return { ok: true, sources: [stdout, stderr], pgid: pid, exited };
}

/**
 * Hands a chatty command's pipes to `taker` (the run log's capture thread). The pipes are
 * opened again for it, what the sockets read already goes to `output` first, then the sockets
 * are closed and the taker's streams stand in for them in `sources`. Nothing changes when the
 * pipes cannot be opened again or the taker is busy. A widened pipe stops counting towards the
 * widener's limit when its socket closes here: with at most 8 capture threads, that is at most
 * 16 MiB of pipes more than the limit's 8, against the 64 MiB Linux gives each user.
 */
function handOverPipes(sources: Readable[], pipes: readonly PipeEnds[], output: Writable, taker: PipeTaker, handedOver: Set<Readable>): void {
  if (sources.some((source) => source.destroyed) || !taker.ready()) return;
  const again: PipeToTake[] = [];
  for (const [index, { read }] of pipes.entries()) {
    const fd = reopenReadEnd(read);
    if (fd !== undefined) again.push({ fd, channel: index === 0 ? 'stdout' : 'stderr' });
  }
  if (again.length !== sources.length) {
    for (const { fd } of again) closeSync(fd);
    return;
  }
  for (const source of sources) {
    handedOver.add(source);
    source.unpipe(output);
    source.pause();
  }
  // What the sockets read already goes first (read() also tags it with its channel).
  for (const source of sources) for (let chunk: unknown = source.read(); chunk !== null; chunk = source.read()) output.write(chunk);
  for (const source of sources) source.destroy();
  const taken = taker.take(again);
  taken.forEach((stream, index) => (sources[index] = stream));
}

/**
 * Runs a job's command in its own process group, streams its output, and makes sure none
 * of its processes outlive the run. Resolves with what happened; never rejects for the
 * command's own failure, only for invalid options.
 */
export async function runCommand(options: CommandOptions): Promise<CommandResult> {
  checkOptions(options);
  const { argv, cwd, output, timeoutMs, killAfterMs, signal } = options;
  const [program = '', ...args] = argv;
  const started = performance.now();
  const state = { timedOut: false, cancelled: false, leftovers: false, escaped: false };
  const finish = (ended: Pick<CommandResult, 'exitCode' | 'signal' | 'lost'>, startError?: string): CommandResult => ({
    ...ended,
    ...state,
    ...(startError !== undefined ? { startError } : {}),
    durationMs: Math.round(performance.now() - started),
  });
  const notStarted = { exitCode: null, signal: null };

  const pipes = await (options.pipes ?? outputPipes).take(2);
  // Nothing is started for a run that is already cancelled or out of time (also while the pipes were made).
  if (signal?.aborted || timeoutMs === 0) {
    if (pipes) closePipes(pipes);
    if (signal?.aborted) state.cancelled = true;
    else state.timedOut = true;
    return finish(notStarted);
  }

  const launcher = options.launcher === undefined ? processLauncher : options.launcher;
  const launched = pipesGiven(pipes, options.user) ?? (pipes && launcher ? await launch(program, args, options, pipes, launcher) : undefined) ?? start(program, args, options, pipes);
  if (!launched.ok) {
    const startError = await describeStartError(await launched.error, program, cwd);
    output.write(`${startError}\n`);
    return finish(notStarted, startError);
  }
  const { sources, pgid, exited } = launched;
  const forgetGroup = killGroupOnExit(pgid);
  options.onStart?.(pgid);

  // pipe() pauses a source while `output` is full, so a chatty command blocks instead of growing memory.
  const keepDraining = (source: Readable) => {
    // `output` failed or closed: discard the rest rather than leave the command blocked on a full pipe.
    if (sources.includes(source) && !handedOver.has(source)) source.resume();
  };
  const handedOver = new Set<Readable>();
  output.on('unpipe', keepDraining);
  // Each pipe's chunks are marked, so that a secret is masked within its own stream (mask-secrets.ts).
  tagOutputChannel(sources[0], 'stdout');
  tagOutputChannel(sources[1], 'stderr');
  for (const source of sources) source.pipe(output, { end: false });
  // A chatty command gets wider pipes, so it does not wait for the daemon every 64 KiB; then,
  // while it runs, its pipes may be read by a thread of their own.
  if (pipes) {
    const widener = options.widener ?? pipeWidener;
    const { takePipes } = options;
    const handOver = takePipes ? () => mainRunning && handedOver.size === 0 && handOverPipes(sources, pipes, output, takePipes, handedOver) : undefined;
    sources.forEach((source, i) => widener.widenWhenChatty(source, (pipes[i] as PipeEnds).read, handOver));
  }

  let mainRunning = true;
  let stopping: Promise<void> | undefined;
  const stopRequested = new AbortController();
  const stop = () => {
    stopRequested.abort();
    stopping ??= terminateGroup(pgid, killAfterMs);
  };
  const timer = setTimeout(() => {
    state.timedOut ||= mainRunning;
    stop();
  }, timerDelay(timeoutMs));
  const onAbort = () => {
    state.cancelled ||= mainRunning;
    stop();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  // Cancelled while the helper started it: stopped now, as a cancel during the run would.
  if (signal?.aborted) onAbort();

  try {
    const ended = await exited;
    mainRunning = false;
    // Whether the command still runs is unknown: its group is stopped, so that nothing of it outlives the run.
    if (ended.lost !== undefined) stop();
    const session = options.sessionLeftovers === false ? false : performance.now() - started < RECENT_SESSION_MS ? 'recent' : true;
    if (stopping === undefined && !(await waitForGroupExit(pgid, LEFTOVER_MOMENT_MS, session))) {
      state.leftovers = true;
      stop();
    }
    await stopping;
    if (!(await waitForOutputEnd(sources, output, LEFTOVER_MOMENT_MS, stopRequested.signal, ESCAPED_OUTPUT_MS))) {
      state.escaped = true;
      for (const source of sources) source.destroy();
    }
    return finish(ended);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    output.off('unpipe', keepDraining);
    for (const source of sources) source.unpipe(output);
    forgetGroup();
  }
}
