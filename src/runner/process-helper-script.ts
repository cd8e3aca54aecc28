/** F_SETPIPE_SZ, Linux's fcntl that sets a pipe's capacity: the helper's second argument. */
export const F_SETPIPE_SZ = 1031;

/**
 * perl that a process started for a job's user runs before its exec, here and in run-as-user.ts.
 * `become_user($uid, $gid)`, `$gid` the group followed by every group (space separated): 1 when
 * the user, group and groups all took; 0 when the user or group did not; -1 when root could not
 * set the groups (a user namespace that forbids it, too many). Only root may set the groups; a
 * daemon that runs as the user itself keeps its own. `close_inherited(@keep)`: closes every
 * descriptor above 2 but those kept, so that one the daemon was started with (a wrapper's lock
 * file, say) never reaches what runs, whoever it runs as.
 */
export const PERL_USER_SUBS = String.raw`
sub become_user {
  my ($uid, $gid) = @_;
  my ($group, @groups) = split(' ', $gid);
  my $root = $> == 0;
  $) = "$group @groups";
  POSIX::setgid(0 + $group);
  POSIX::setuid(0 + $uid);
  my ($real, $effective, @have) = ((split(' ', $())[0], split(' ', $)));
  return 0 if $< != $uid || $> != $uid || $real != $group || $effective != $group;
  my %want = map { $_ => 1 } @groups;
  return -1 if $root && (grep({ !$want{$_} } @have) || grep({ my $id = $_; !grep({ $_ == $id } @have) } @groups));
  return 1;
}
sub close_inherited {
  my %keep = map { $_ => 1 } @_;
  opendir(my $fds, '/proc/self/fd') or return;
  my @open = grep { /^\d+$/ && $_ > 2 && !$keep{$_} } readdir($fds);
  closedir($fds);
  POSIX::close($_) for @open;
}
`;

/**
 * The helper, in perl (perl-base is Essential on Debian and Ubuntu). Its arguments are the
 * daemon's pid and F_SETPIPE_SZ (perl's Fcntl does not name it). Requests come on stdin as `<length>\n<fields>`, the fields separated by NUL:
 * id, cwd, uid (empty for none), the gid followed by every group the process is to have (space
 * separated; empty for none), the daemon's descriptors of the write ends of stdout
 * and stderr, their device and inode numbers (`dev:ino:dev:ino`, checked once they are open),
 * the number of argv words, the argv words, then the environment as NAME=value.
 * It answers on stdout, a line each: `ready`; `forked <id> <pid>` at once after each fork,
 * while the child gets ready (a child that finds, just before its exec, that its helper has
 * ended exits instead, so nothing runs whose pid the daemon may not have been told);
 * `started <id> <pid>` once the program has been exec'd; `failed <id> <stage> <errno>` (stage
 * 0: the fork itself, 1: the pipes (found before the fork: no `forked` line) or the session,
 * 2: the working folder, 3: the user, 4: exec, 5: the user's groups);
 * and `exited <pid> <wait status>` for each child it reaps. The helper opens the pipes through
 * /proc/<daemon>/fd, so they need no name, and sets the environment, before it forks: the
 * child does only what must be its own (the session, its descriptors 0 to 2, the user, the
 * folder) before its exec. A request whose first field is `widen` (then id, the
 * daemon's descriptor of a pipe's read end, its `dev:ino`, and a size) sets that pipe's capacity
 * through /proc the same way and answers `widened <id> open <errno>` when it could not open
 * that pipe (or found another file there: EIO), else `widened <id> fcntl <errno>` (0 when
 * done): widening a chatty command's pipe starts no process either. A request whose first field
 * is `fifos` (then id and paths) makes a FIFO at each path, mode 0600 whatever the umask,
 * stopping at the first that fails, and answers `fifos <id> <errno>` (0 when all were made): the
 * output pipes are made without a `mkfifo` forked from the daemon. A SIGCHLD wakes the loop
 * through a pipe of its own, so no exit waits for the next request. It exits when the daemon
 * closes its stdin (the daemon is gone); what it started runs on, as the children of a killed
 * daemon do, and the daemon's recovery stops them. It blocks the signals that stop a daemon (a
 * Ctrl-C reaches the daemon's whole process group): the daemon may still be waiting for runs to
 * end, and only the helper can tell it how they ended.
 */
export const HELPER_SCRIPT = String.raw`
use strict; use warnings; use POSIX (); use Fcntl ();
$| = 1;
$0 = 'deployhook process helper';
my ($daemon, $set_pipe_size) = map { 0 + $_ } @ARGV[0, 1];
my $helper = $$;
# Descriptors the daemon was started with (a wrapper's lock file) are closed here, once: what
# perl opens from now on is closed on exec (above $^F), so none reaches what the helper starts.
close_inherited();
open(my $null, '<', '/dev/null') or die "/dev/null: $!";
pipe(my $wake_in, my $wake_out) or die "pipe: $!";
for my $end ($wake_in, $wake_out) { fcntl($end, Fcntl::F_SETFL(), Fcntl::O_NONBLOCK()) or die "fcntl: $!" }
$SIG{CHLD} = sub { syswrite($wake_out, 'x') };
# Blocked rather than ignored: an ignored signal stays ignored across exec, so every child would
# have to set each back, and a blocked one is let through by the one sigprocmask it makes anyway.
my $unblocked = POSIX::SigSet->new();
POSIX::sigprocmask(POSIX::SIG_BLOCK(), POSIX::SigSet->new(POSIX::SIGPIPE(), POSIX::SIGINT(), POSIX::SIGTERM(), POSIX::SIGHUP(), POSIX::SIGQUIT())) or die "sigprocmask: $!";
sub answer { print STDOUT $_[0] or exit 0 }
${PERL_USER_SUBS}
sub reap { while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) { answer("exited $pid $?\n") } }
sub start {
  my ($id, $cwd, $uid, $gid, $out, $err, $pipe, $argc, @rest) = @_;
  my @argv = splice(@rest, 0, $argc);
  # What can be made ready before the fork is: every page the child writes, and every page of
  # perl's code it runs, costs it a fault of its own (a copy, or a mapping), before its exec.
  my $early = sub { answer("failed $id 1 " . (0 + $!) . "\n") };
  sysopen(my $stdout, "/proc/$daemon/fd/$out", Fcntl::O_WRONLY()) or return $early->();
  sysopen(my $stderr, "/proc/$daemon/fd/$err", Fcntl::O_WRONLY()) or return $early->();
  if (join(':', (stat($stdout))[0, 1], (stat($stderr))[0, 1]) ne $pipe) { $! = 5; return $early->() }
  pipe(my $status_in, my $status_out) or return answer("failed $id 0 " . (0 + $!) . "\n");
  # The child's environment, which it takes through the fork; the helper's own is emptied again
  # once the fork has failed or the child has exec'd.
  %ENV = ();
  for (@rest) { my ($name, $value) = split(/=/, $_, 2); $ENV{$name} = $value }
  my $pid = fork();
  if (!defined $pid) {
    my $errno = 0 + $!;
    %ENV = ();
    return answer("failed $id 0 $errno\n");
  }
  if ($pid == 0) {
    my $stage = 1;
    my $fail = sub { syswrite($status_out, pack('NN', $stage, 0 + $!)); POSIX::_exit(127) };
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), $unblocked) or $fail->();
    defined POSIX::setsid() or $fail->();
    defined POSIX::dup2(fileno($null), 0) or $fail->();
    defined POSIX::dup2(fileno($stdout), 1) or $fail->();
    defined POSIX::dup2(fileno($stderr), 2) or $fail->();
    if ($uid ne '') {
      $stage = 3;
      my $became = become_user($uid, $gid);
      if ($became == 0) { $! = 1; $fail->() }
      # Root could not set the groups: nothing runs.
      $stage = 5;
      if ($became < 0) { $! = 1; $fail->() }
    }
    # Entered as the job's user: a folder root alone could enter is refused, whatever links lead there.
    $stage = 2;
    chdir($cwd) or $fail->();
    $stage = 4;
    # Not exec'd once the helper has ended: the daemon may never have been told this pid.
    if (getppid() != $helper) { $! = 5; $fail->() }
    # Open: 0, 1 and 2; everything else the helper holds is closed by the exec.
    { no warnings; exec { $argv[0] } @argv; }
    $fail->();
  }
  close $stdout;
  close $stderr;
  close $status_out;
  answer("forked $id $pid\n");
  my $status = '';
  while (length($status) < 8) {
    my $got = sysread($status_in, $status, 8 - length($status), length($status));
    next if !defined $got && $!{EINTR};
    last if !$got;
  }
  close $status_in;
  %ENV = ();
  if (length($status) == 8) {
    my ($stage, $errno) = unpack('NN', $status);
    waitpid($pid, 0);
    return answer("failed $id $stage $errno\n");
  }
  answer("started $id $pid\n");
}
sub widen {
  my ($id, $fd, $pipe, $bytes) = @_;
  sysopen(my $end, "/proc/$daemon/fd/$fd", Fcntl::O_RDONLY() | Fcntl::O_NONBLOCK()) or return answer("widened $id open " . (0 + $!) . "\n");
  return answer("widened $id open 5\n") if join(':', (stat($end))[0, 1]) ne $pipe;
  my $errno = fcntl($end, $set_pipe_size, 0 + $bytes) ? 0 : 0 + $!;
  close $end;
  answer("widened $id fcntl $errno\n");
}
sub fifos {
  my ($id, @paths) = @_;
  # 0600 whatever the umask, as mkfifo -m 600 makes them.
  my $mask = umask(0);
  my $errno = 0;
  for my $path (@paths) { next if POSIX::mkfifo($path, 0600); $errno = 0 + $!; last }
  umask($mask);
  answer("fifos $id $errno\n");
}
answer("ready\n");
my $in = '';
while (1) {
  my $rin = '';
  vec($rin, 0, 1) = 1;
  vec($rin, fileno($wake_in), 1) = 1;
  # perl runs a SIGCHLD handler between its own steps: one that arrives just before select
  # blocks runs only after it, so select wakes up now and then to reap anyway.
  my $ready = select(my $rout = $rin, undef, undef, 0.25);
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
    my @fields = split(/\0/, $request, -1);
    if ($fields[0] eq 'widen') { widen(@fields[1 .. $#fields]) } elsif ($fields[0] eq 'fifos') { fifos(@fields[1 .. $#fields]) } else { start(@fields) }
  }
}
`;
