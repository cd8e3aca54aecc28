import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';

const exists = (path: string) => stat(path).then(() => true, () => false);

/**
 * Says in one line why a command could not start, for the run log and the run record.
 * Node reports a missing working folder, a missing program and a script whose `#!`
 * interpreter is missing all as ENOENT; this tells them apart.
 */
export async function describeStartError(error: unknown, program: string, cwd: string): Promise<string> {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') {
    if (!(await exists(cwd))) return `working folder not found: ${cwd}`;
    if (program.includes('/') && (await exists(resolve(cwd, program)))) {
      return `could not start ${program}: its interpreter was not found (check its #! line)`;
    }
    return `command not found: ${program}`;
  }
  if ((error as NodeJS.ErrnoException | undefined)?.syscall === 'chdir') return `could not enter the working folder ${cwd}: ${code ?? 'unknown error'}`;
  if (code === 'EACCES') return `permission denied: ${program} (is it executable?)`;
  return error instanceof Error ? error.message : `could not start ${program}: ${String(error)}`;
}
