import { spawn, type ChildProcess } from 'node:child_process';
import { fstatSync } from 'node:fs';
import { constants } from 'node:os';

/**
 * The helper, in perl (perl-base is Essential on Debian and Ubuntu). Its first argument is the
 * daemon's pid. Requests come on stdin as `<length>\n<fields>`, the fields separated by NUL:
 * id, cwd, uid and gid (empty for none), the daemon's descriptors of the write ends of stdout
 * and stderr, their device and inode numbers (`dev:ino:dev:ino`, checked once they are open),
 * the number of argv words, the argv words, then the environment as NAME=value.
 * It answers on stdout, a line each: `ready`, `started <id> <pid>` once the program has been
 * exec'd, `failed <id> <stage> <errno>` (stage 1: the pipes or the session, 2: the working
 * folder, 3: the user, 4: exec), and `exited <pid> <wait status>` for each child it reaps. The
 * child opens the pipes through /proc/<daemon>/fd, so they need no name. A SIGCHLD wakes the
 * loop through a pipe of its own, so no exit waits for the next request. It exits when the
 * daemon closes its stdin (the daemon is gone); what it started runs on, as the children of a
 * killed daemon do, and the daemon's recovery stops them. It ignores the signals that stop a
 * daemon (a Ctrl-C reaches the daemon's whole process group): the daemon may still be
 * waiting for runs to end, and only the helper can tell it how they ended.
 */
const HELPER = String.raw`
use strict; use warnings; use POSIX (); use Fcntl ();
$| = 1;
$0 = 'deployhook process helper';
my $daemon = 0 + $ARGV[0];
pipe(my $wake_in, my $wake_out) or die "pipe: $!";
for my $end ($wake_in, $wake_out) { fcntl($end, Fcntl::F_SETFL(), Fcntl::O_NONBLOCK()) or die "fcntl: $!" }
$SIG{CHLD} = sub { syswrite($wake_out, 'x') };
$SIG{PIPE} = 'IGNORE';
$SIG{$_} = 'IGNORE' for qw(INT TERM HUP QUIT);
sub answer { print STDOUT $_[0] or exit 0 }
sub reap { while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { answer("exited $pid $?\n") } }
sub start {
  my ($id, $cwd, $uid, $gid, $out, $err, $pipe, $argc, @rest) = @_;
  my @argv = splice(@rest, 0, $argc);
  pipe(my $status_in, my $status_out) or return answer("failed $id 1 " . (0 + $!) . "\n");
  my $pid = fork();
  defined $pid or return answer("failed $id 1 " . (0 + $!) . "\n");
  if ($pid == 0) {
    close $status_in;
    my $stage = 1;
    my $fail = sub { syswrite($status_out, pack('NN', $stage, 0 + $!)); POSIX::_exit(127) };
    $SIG{$_} = 'DEFAULT' for qw(CHLD PIPE INT TERM HUP QUIT);
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new()) or $fail->();
    defined POSIX::setsid() or $fail->();
    open(STDIN, '<', '/dev/null') or $fail->();
    sysopen(STDOUT, "/proc/$daemon/fd/$out", Fcntl::O_WRONLY()) or $fail->();
    sysopen(STDERR, "/proc/$daemon/fd/$err", Fcntl::O_WRONLY()) or $fail->();
    my @pipes = ((stat(STDOUT))[0, 1], (stat(STDERR))[0, 1]);
    if (join(':', @pipes) ne $pipe) { $! = 5; $fail->() }
    $stage = 2;
    chdir($cwd) or $fail->();
    if ($uid ne '') {
      $stage = 3;
      $) = "$gid $gid";
      POSIX::setgid(0 + $gid);
      POSIX::setuid(0 + $uid);
      my ($real, $effective) = ((split(' ', $())[0], (split(' ', $)))[0]);
      if ($< != $uid || $> != $uid || $real != $gid || $effective != $gid) { $! = 1; $fail->() }
    }
    $stage = 4;
    %ENV = ();
    for (@rest) { my ($name, $value) = split(/=/, $_, 2); $ENV{$name} = $value }
    { no warnings; exec { $argv[0] } @argv; }
    $fail->();
  }
  close $status_out;
  my $status = '';
  while (length($status) < 8) {
    my $got = sysread($status_in, $status, 8 - length($status), length($status));
    next if !defined $got && $!{EINTR};
    last if !$got;
  }
  close $status_in;
  if (length($status) == 8) {
    my ($stage, $errno) = unpack('NN', $status);
    waitpid($pid, 0);
    return answer("failed $id $stage $errno\n");
  }
  answer("started $id $pid\n");
}
answer("ready\n");
my $in = '';
while (1) {
  my $rin = '';
  vec($rin, 0, 1) = 1;
  vec($rin, fileno($wake_in), 1) = 1;
  my $ready = select(my $rout = $rin, undef, undef, undef);
  if ($ready > 0 && vec($rout, fileno($wake_in), 1)) { while (sysread($wake_in, my $drained, 512)) {} }
  reap();
  next unless $ready > 0 && vec($rout, 0, 1);
  my $got = sysread(STDIN, $in, 65536, length $in);
  if (!defined $got) { next if $!{EINTR} || $!{EAGAIN}; exit 0 }
  exit 0 if $got == 0;
  while ($in =~ /\A(\d+)\n/) {
    my ($length, $head) = ($1, length($1) + 1);
    last if length($in) < $head + $length;
    my $request = substr($in, $head, $length);
    substr($in, 0, $head + $length) = '';
    start(split(/\0/, $request, -1));
  }
}
`;

/** What starting a process needs; stdout and stderr are the daemon's descriptors of the pipes' write ends. */
export interface LaunchRequest {
  program: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  user?: { uid: number; gid: number } | undefined;
  stdout: number;
  stderr: number;
}

/** How a started process ended; `lost` when its end can no longer be known (the helper ended first). */
export interface LaunchedExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  lost?: string;
}

export type Launched =
  | { ok: true; pid: number; exited: Promise<LaunchedExit> }
  /** The program could not be started: an error like node's, with an errno `code`. */
  | { ok: false; error: NodeJS.ErrnoException }
  /** The helper cannot start processes now: start this one some other way. */
  | { ok: false; unavailable: string };

const STAGES: Record<string, string> = { '1': 'set up its output and session', '2': 'enter its working folder', '3': 'switch to its user', '4': 'exec' };
const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, value]) => [value, name]));
const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, value]) => [value, name as NodeJS.Signals]));

/**
 * Starts the runs' processes from a small perl process of its own (~8 MB), not from the daemon.
 * node's `spawn` forks the daemon: the fork copies the page tables of its memory outside V8's
 * heap and holds the event loop 2–6 ms per start, which under a flood of pushes is 12–15 % of
 * the main thread, and in push to command is on the way to the first line (docs/benchmarks.md,
 * section 1, "Where a start is made"). The helper forks itself instead, with what `spawn`
 * would do (`detached`: a new session and process group; stdin from /dev/null; the user and
 * group of `run_as`, with no other groups; signals at their defaults), and reports each
 * process's end. The daemon still signals the process groups itself.
 *
 * The helper is started with the first process. Where it cannot run (no perl, no /proc), it
 * is `unavailable` and processes are started with node's `spawn`, as before. If it ends while
 * processes it started run, their ends are lost: each `exited` resolves with `lost`, and the
 * caller stops the process group. The next start starts a new helper.
 */
export class ProcessLauncher {
  readonly #perl: string;
  #helper: ChildProcess | undefined;
  #ready: Promise<boolean> | undefined;
  #unavailable: string | undefined;
  #nextId = 1;
  #input = '';
  readonly #starting = new Map<string, (launched: Launched) => void>();
  readonly #running = new Map<number, (exit: LaunchedExit) => void>();

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
    const pipes = [fstatSync(request.stdout), fstatSync(request.stderr)].map(({ dev, ino }) => `${dev}:${ino}`).join(':');
    const fields = [request.cwd, request.user ? String(request.user.uid) : '', request.user ? String(request.user.gid) : '', String(request.stdout), String(request.stderr), pipes, String(1 + request.args.length), request.program, ...request.args, ...Object.entries(request.env).map(([name, value]) => `${name}=${value}`)];
    // The helper's fields are separated by NUL. node's spawn refuses a NUL with a message of its own: it is left to say so.
    if (fields.some((field) => field.includes('\0'))) return { ok: false, unavailable: 'a NUL character in the command, its folder or its environment' };
    if (this.#unavailable !== undefined) return { ok: false, unavailable: this.#unavailable };
    if (!(await (this.#ready ??= this.#start()))) return { ok: false, unavailable: this.#unavailable ?? 'the process helper ended' };
    const helper = this.#helper;
    // Ended meanwhile: this start goes through node's spawn, and the next one starts a new helper.
    if (!helper?.stdin || helper.exitCode !== null || helper.signalCode !== null) return { ok: false, unavailable: 'the process helper ended' };
    const id = String(this.#nextId++);
    const body = Buffer.from([id, ...fields].join('\0'));
    return new Promise<Launched>((resolve) => {
      this.#starting.set(id, resolve);
      helper.stdin?.write(Buffer.concat([Buffer.from(`${body.length}\n`), body]));
    });
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
        helper = spawn(this.#perl, ['-e', HELPER, String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
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
      helper.once('exit', (code, signal) => {
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
        // A start under way may have started the process already: it is not started again another way.
        const starting = Object.assign(new Error(`${why} while starting it`), { code: 'EHELPER' });
        for (const settle of this.#starting.values()) settle({ ok: false, error: starting });
        this.#starting.clear();
        for (const settle of this.#running.values()) settle({ exitCode: null, signal: null, lost: why });
        this.#running.clear();
      });
      // The helper must not keep the daemon's event loop alive on its own.
      helper.unref();
      (helper.stdout as unknown as { unref?: () => void } | null)?.unref?.();
      (helper.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    });
  }

  #answer(line: string): void {
    const [kind, first = '', second = '', third = ''] = line.split(' ');
    if (kind === 'started') {
      const pid = Number(second);
      const settle = this.#starting.get(first);
      this.#starting.delete(first);
      const exited = new Promise<LaunchedExit>((resolve) => this.#running.set(pid, resolve));
      settle?.({ ok: true, pid, exited });
    } else if (kind === 'failed') {
      const settle = this.#starting.get(first);
      this.#starting.delete(first);
      const errno = Number(third);
      const code = ERRNO_NAMES.get(errno) ?? `errno ${third}`;
      const why = `could not ${STAGES[second] ?? 'start'}: ${code}`;
      // The helper's own part failed (the pipes through /proc, the session): node's spawn does it instead from now on.
      if (second === '1') settle?.({ ok: false, unavailable: this.#disable(`the process helper ${why}`) });
      else settle?.({ ok: false, error: Object.assign(new Error(why), { code }) });
    } else if (kind === 'exited') {
      const pid = Number(first);
      const status = Number(second);
      const settle = this.#running.get(pid);
      this.#running.delete(pid);
      const signal = status & 0x7f;
      settle?.(signal === 0 ? { exitCode: status >> 8, signal: null } : { exitCode: null, signal: SIGNAL_NAMES.get(signal) ?? null });
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
