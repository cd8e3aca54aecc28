import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { DeployhookError } from '../errors.js';
import { currentBootId as bootId, processStartTime } from '../runner/orphan-group.js';
import { pathOnlyEnvironment } from '../runner/path-only-env.js';

const LOCK_FILE = 'deployhook.lock';

interface Holder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the boot id, tells the holder from a reused pid. */
  startTime: string;
  bootId: string;
}

function holderOf(text: string): Holder | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<Holder>;
    if (Number.isSafeInteger(parsed.pid) && typeof parsed.startTime === 'string' && typeof parsed.bootId === 'string') return parsed as Holder;
  } catch {
    // Not a lock this code wrote: nobody holds it.
  }
  return undefined;
}

async function isAlive(holder: Holder): Promise<boolean> {
  return holder.bootId === (await bootId()) && (await processStartTime(holder.pid)) === holder.startTime;
}

export interface StateDirLockOptions {
  /** The perl that holds the kernel's lock (`perl` on PATH by default). */
  perl?: string;
  /** Told when the kernel's lock could not be taken or was lost: the lock file alone guards then. */
  onProblem?: (message: string) => void;
  /** How often a lock whose holder ended is tried again while another process has it (10 s). */
  retakeEveryMs?: number;
}

/**
 * Makes this process the only daemon using `stateDir`: a second one would take the first's
 * runs for runs of a dead daemon (stopping their commands) and fold its journal in under it.
 *
 * Two locks. The kernel's (flock(2) on the folder itself) is held by a small perl process of
 * the daemon's for as long as the daemon lives: the kernel gives it to one process at a time
 * and drops it when its holder ends, so any number of daemons starting at once over a stale
 * lock still end with one. Node has no flock of its own. Then the lock file, naming this
 * process (pid, start time, boot) for the message a second daemon prints, and guarding alone
 * where perl cannot run or the folder cannot be flocked (some network file systems).
 *
 * The file is made whole before it gets its name (written aside, then linked), so nobody
 * ever reads it half-written. One that names a process no longer running (a crash, a power
 * cut) is taken over: renamed aside, checked again there (a newcomer's fresh lock is put
 * back), and removed. By itself it tells processes apart within one host and pid namespace;
 * the kernel's lock also across containers sharing the folder on one host, not across
 * machines. Resolves with the release.
 */
export async function lockStateDir(stateDir: string, options: StateDirLockOptions = {}): Promise<() => Promise<void>> {
  const path = join(stateDir, LOCK_FILE);
  const kernel = await takeKernelLock(stateDir, path, options);
  try {
    const releaseFile = await lockFile(stateDir, path);
    return async () => {
      try {
        await releaseFile();
      } finally {
        await kernel?.release();
      }
    };
  } catch (error) {
    await kernel?.release();
    throw error;
  }
}

async function lockFile(stateDir: string, path: string): Promise<() => Promise<void>> {
  const mine = JSON.stringify({ pid: process.pid, startTime: await processStartTime(process.pid), bootId: await bootId() });
  const release = async () => {
    // Only our own lock: never one another daemon took over meanwhile.
    if ((await lockText(path)).trim() === mine) await rm(path, { force: true });
  };
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (await linkWhole(path, `${mine}\n`)) return release;
    const seen = await readFile(path, 'utf8').catch(() => undefined);
    if (seen === undefined) continue; // removed meanwhile: try again
    const running = await runningHolder(seen);
    if (running !== undefined) throw inUse(stateDir, path, running);
    // Stale: move it aside; if what was moved is not what was judged stale, it was a
    // newcomer's fresh lock, which goes back under its name.
    const aside = `${path}.stale-${process.pid}-${attempt}`;
    if (!(await rename(path, aside).then(() => true, () => false))) continue;
    const moved = await lockText(aside);
    if (moved !== seen) {
      await link(aside, path).catch(() => undefined);
      await rm(aside, { force: true });
      const newcomer = holderOf(moved);
      throw inUse(stateDir, path, newcomer?.pid);
    }
    await rm(aside, { force: true });
  }
  throw inUse(stateDir, path, undefined);
}

/**
 * How long a start waits for the kernel's lock when the lock file names no running process:
 * a daemon that has just ended leaves its holder a moment to see it (milliseconds).
 */
const KERNEL_LOCK_WAIT_MS = 1_000;
const KERNEL_LOCK_RETRY_MS = 20;
/** How often a lock whose holder ended is tried again while another process has it. */
const RETAKE_EVERY_MS = 10_000;
/** How long a release waits for the holder to end before it is killed. */
const HOLDER_EXIT_MS = 2_000;

/**
 * The holder: flock(2) on the folder, then `held`, then it reads stdin until the daemon's end
 * closes it, however the daemon ends (a kill -9 too). It ignores the signals a terminal's
 * Ctrl-C or a service manager sends the daemon's group, so a daemon that drains after SIGTERM
 * keeps its lock to the end; it runs in a session of its own as well. It is `deployhook
 * state_dir lock` in `ps`. It loads no module (each costs milliseconds of the daemon's start):
 * O_RDONLY is 0 and LOCK_EX | LOCK_NB 6 on every Linux, and EWOULDBLOCK comes from node. It
 * execs nothing and lives as long as the daemon, so what it inherited it keeps no longer than
 * the daemon does. Arguments: the folder, how many more tries after the first, the pause
 * between tries in seconds, EWOULDBLOCK. Answers one line: `held`, `busy`, or `failed <stage>
 * <errno>` (stage open or flock).
 */
const HOLDER_SCRIPT = String.raw`
$0 = 'deployhook state_dir lock';
$SIG{$_} = 'IGNORE' for qw(HUP INT TERM QUIT PIPE);
$| = 1;
my ($dir, $tries, $pause, $would_block) = @ARGV;
sysopen(my $lock, $dir, 0) or do { print 'failed open ', 0 + $!, "\n"; exit 2 };
until (flock($lock, 6)) {
  if ($! != $would_block) { print 'failed flock ', 0 + $!, "\n"; exit 2 }
  if ($tries-- <= 0) { print "busy\n"; exit 3 }
  select(undef, undef, undef, $pause);
}
print "held\n";
1 while sysread(STDIN, my $ignored, 512);
`;

type KernelLockAttempt = { kind: 'held'; holder: ChildProcess } | { kind: 'busy' } | { kind: 'unavailable'; why: string };

/**
 * Takes the kernel's lock on `stateDir`: undefined when it cannot be had here (reported
 * through `onProblem`; the lock file still guards). A lock held by a running daemon is refused
 * at once; otherwise the start waits up to KERNEL_LOCK_WAIT_MS for a holder that is ending.
 */
async function takeKernelLock(stateDir: string, path: string, options: StateDirLockOptions): Promise<{ release(): Promise<void> } | undefined> {
  const perl = options.perl ?? 'perl';
  let attempt = await holdKernelLock(stateDir, perl, 0);
  if (attempt.kind === 'busy') {
    const running = await runningHolder(await lockText(path));
    if (running !== undefined) throw inUse(stateDir, path, running);
    attempt = await holdKernelLock(stateDir, perl, Math.ceil(KERNEL_LOCK_WAIT_MS / KERNEL_LOCK_RETRY_MS));
  }
  if (attempt.kind === 'busy') {
    const running = await runningHolder(await lockText(path));
    // Held by a process this one cannot name: a daemon in a container sharing the folder, or any program that flocks it.
    throw running !== undefined ? inUse(stateDir, path, running) : inUse(stateDir, `the kernel's lock (flock) on ${stateDir} (\`lslocks\` shows which process)`, undefined);
  }
  if (attempt.kind === 'unavailable') {
    options.onProblem?.(`could not take the kernel's lock on state_dir ${stateDir} (${attempt.why}): only ${path} keeps a second daemon out, which two daemons starting at the same moment over a stale lock could both pass`);
    return undefined;
  }
  const retakeEveryMs = options.retakeEveryMs ?? RETAKE_EVERY_MS;
  let holder = attempt.holder;
  let released = false;
  let retry: NodeJS.Timeout | undefined;
  /** Takes the lock again after its holder ended: at once, then every RETAKE_EVERY_MS while it cannot be had. */
  const retake = (why: string, tries: number): void => {
    void holdKernelLock(stateDir, perl, 0).then((again) => {
      if (released) {
        if (again.kind === 'held') void endHolder(again.holder);
        return;
      }
      if (again.kind !== 'held') {
        if (tries === 0) options.onProblem?.(`${why}, and it could not be taken again (${again.kind === 'busy' ? 'another process holds it' : again.why}): only ${path} keeps a second daemon out until it is; tried again every ${String(retakeEveryMs / 1000)} s`);
        retry = setTimeout(() => retake(why, tries + 1), retakeEveryMs);
        retry.unref();
        return;
      }
      holder = again.holder;
      watch(holder);
      options.onProblem?.(`${why}; it was taken again`);
    });
  };
  const watch = (watched: ChildProcess): void => {
    watched.once('close', (code, signal) => {
      // Nobody else can have it meanwhile while the lock file names this daemon, unless a
      // daemon without the kernel's lock, or another program, takes it.
      if (!released && watched === holder) retake(`the process holding the kernel's lock on state_dir ${stateDir} ended (${signal ?? `exit ${String(code)}`})`, 0);
    });
  };
  watch(holder);
  return {
    async release() {
      released = true;
      clearTimeout(retry);
      await endHolder(holder);
    },
  };
}

function holdKernelLock(dir: string, perl: string, retries: number): Promise<KernelLockAttempt> {
  if (process.platform !== 'linux') return Promise.resolve({ kind: 'unavailable', why: 'flock through perl is used on Linux only' });
  return new Promise((resolve) => {
    let holder: ChildProcess;
    try {
      holder = spawn(perl, ['-e', HOLDER_SCRIPT, '--', dir, String(retries), String(KERNEL_LOCK_RETRY_MS / 1000), String(constants.errno.EWOULDBLOCK)], {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: pathOnlyEnvironment(),
        detached: true,
      });
    } catch (error) {
      resolve({ kind: 'unavailable', why: `could not start ${perl}: ${(error as Error).message}` });
      return;
    }
    let answer = '';
    holder.stdin?.on('error', () => undefined);
    holder.on('error', (error: NodeJS.ErrnoException) => {
      resolve({ kind: 'unavailable', why: `could not start ${perl}: ${error.code === 'ENOENT' ? 'not found' : error.message}` });
    });
    holder.stdout?.setEncoding('latin1');
    holder.stdout?.on('data', (chunk: string) => {
      answer += chunk;
      if (answer !== 'held\n') return;
      // Neither the holder nor its pipes keep the daemon's event loop alive.
      holder.unref();
      (holder.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
      holder.stdout?.destroy();
      resolve({ kind: 'held', holder });
    });
    holder.once('close', (code, signal) => {
      if (answer === 'busy\n') resolve({ kind: 'busy' });
      else if (answer.startsWith('failed ')) resolve({ kind: 'unavailable', why: describeFailure(answer.trim()) });
      else resolve({ kind: 'unavailable', why: `${perl} ended (${signal ?? `exit ${String(code)}`})` });
    });
  });
}

/** `failed <stage> <errno>` as a reason: `flock: EOPNOTSUPP`. */
function describeFailure(answer: string): string {
  const [, stage, errno] = answer.split(' ');
  const name = Object.entries(constants.errno).find(([, value]) => String(value) === errno)?.[0] ?? `errno ${errno ?? '?'}`;
  return `${stage === 'open' ? 'open' : 'flock'}: ${name}`;
}

/** Ends a holder: its stdin closed, it exits; killed if it has not within HOLDER_EXIT_MS. */
async function endHolder(holder: ChildProcess): Promise<void> {
  if (holder.exitCode !== null || holder.signalCode !== null) return;
  // Waited for with the event loop kept alive: a stop that has nothing else left to do still
  // sees the holder end, and goes on to say it has stopped.
  holder.ref();
  const ended = new Promise<void>((resolve) => holder.once('exit', () => resolve()));
  holder.stdin?.end();
  const timer = setTimeout(() => holder.kill('SIGKILL'), HOLDER_EXIT_MS);
  await ended;
  clearTimeout(timer);
}

/** The lock file's text; empty when there is none. */
function lockText(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}

/** The pid a lock file's text names when that process is running. */
async function runningHolder(text: string): Promise<number | undefined> {
  const holder = holderOf(text);
  return holder !== undefined && (await isAlive(holder)) ? holder.pid : undefined;
}

/** Creates `path` with `content` only if nothing has that name: written aside, then linked. */
async function linkWhole(path: string, content: string): Promise<boolean> {
  const aside = `${path}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(aside, content, { mode: 0o644 });
  try {
    await link(aside, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  } finally {
    await rm(aside, { force: true });
  }
}

/** `held`: the lock file's path, or what else is held. */
function inUse(stateDir: string, held: string, pid: number | undefined): DeployhookError {
  const who = pid === undefined ? 'another process' : `process ${pid}`;
  return new DeployhookError(
    'STATE_DIR_IN_USE',
    `Expected to be the only deployhook using state_dir ${stateDir}, but ${who} holds ${held}. Stop that daemon first (is the service running? systemctl stop deployhook), or give this one a state_dir of its own.`,
  );
}
