import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pathOnlyEnvironment } from './path-only-env.js';
import type { ProcessUser } from './process-launcher.js';

/**
 * Run by perl as root: takes on the user's groups (all of them, as the process helper does),
 * group and user, checks them, closes every descriptor above 2, and execs the program.
 */
const DROP_AND_EXEC = String.raw`
use POSIX ();
my ($uid, $group, @groups) = split(' ', shift(@ARGV));
my $root = $> == 0;
$) = "$group @groups";
POSIX::setgid(0 + $group);
POSIX::setuid(0 + $uid);
my ($real, $effective, @have) = ((split(' ', $())[0], split(' ', $)));
exit 126 if $< != $uid || $> != $uid || $real != $group || $effective != $group;
# Root could not set the groups (a user namespace that forbids it): nothing runs with root's.
my %want = map { $_ => 1 } @groups;
exit 126 if $root && (grep({ !$want{$_} } @have) || grep({ my $id = $_; !grep({ $_ == $id } @have) } @groups));
if (opendir(my $fds, '/proc/self/fd')) {
  my @open = grep { /^\d+$/ && $_ > 2 } readdir($fds);
  closedir($fds);
  POSIX::close($_) for @open;
}
{ no warnings; exec { $ARGV[0] } @ARGV; }
exit 127;
`;

export interface UserStepOptions {
  cwd?: string;
  /** Stopped (SIGTERM) after this long. */
  timeout: number;
}

/**
 * Runs a short program (`mkdir`, `find`, `chgrp`) as the job's user, when it has one, with PATH
 * alone of the daemon's environment (any process of that user may read another's): through a
 * perl that gives it all the user's groups, as the process helper does (node's own switch keeps
 * one), and nothing open but stdin, stdout and stderr. Without perl, node switches itself.
 * Resolves with stdout; rejects as execFile does, with `stdout` on the error.
 */
export async function runAsUser(user: ProcessUser | undefined, program: string, args: readonly string[], options: UserStepOptions): Promise<string> {
  const run = promisify(execFile);
  const base = { env: pathOnlyEnvironment(), timeout: options.timeout, ...(options.cwd !== undefined ? { cwd: options.cwd } : {}) };
  if (user === undefined) return (await run(program, args, base)).stdout;
  const ids = [user.uid, user.gid, ...(user.groups ?? [user.gid])].join(' ');
  try {
    return (await run('perl', ['-e', DROP_AND_EXEC, ids, program, ...args], base)).stdout;
  } catch (error) {
    // perl itself is missing: node switches to the user, with its one group.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || (error as { path?: string }).path !== 'perl') throw error;
    return (await run(program, args, { ...base, uid: user.uid, gid: user.gid })).stdout;
  }
}
