import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pathOnlyEnvironment } from './path-only-env.js';
import { PERL_USER_SUBS } from './process-helper-script.js';
import { becomeUserGroups, type ProcessUser } from './process-launcher.js';

/**
 * Run by perl as root: takes on the user's groups (all of them), group and user as the process
 * helper does, closes every descriptor above 2, and execs the program; exits 126 when the
 * user or all the groups did not take.
 */
const DROP_AND_EXEC = String.raw`
use POSIX ();
${PERL_USER_SUBS}
my ($uid, $gid) = splice(@ARGV, 0, 2);
exit 126 if become_user($uid, $gid) < 1;
close_inherited();
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
  try {
    return (await run('perl', ['-e', DROP_AND_EXEC, String(user.uid), becomeUserGroups(user), program, ...args], base)).stdout;
  } catch (error) {
    // perl itself is missing: node switches to the user, with its one group.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || (error as { path?: string }).path !== 'perl') throw error;
    return (await run(program, args, { ...base, uid: user.uid, gid: user.gid })).stdout;
  }
}
