import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** How often a terminating group is checked for survivors. */
const POLL_MS = 50;
/** After SIGKILL, how long to wait for the kernel to finish off the group (a process in uninterruptible I/O dies late). */
const AFTER_SIGKILL_MS = 2_000;

/**
 * Sends `signal` to every process of the group; false when the group has no process left.
 * EPERM means the only members left run as another user (a setuid program such as sudo):
 * they exist, but cannot be signalled from here.
 */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  return send(-pgid, signal);
}

/** Sends `signal` to one process; false when there is no such process. */
export function signalProcess(pid: number, signal: NodeJS.Signals | 0): boolean {
  return send(pid, signal);
}

/** Whether a process with this pid exists, as `signalGroup` tells it of a group (EPERM: another user's). */
export function processExists(pid: number): boolean {
  return signalProcess(pid, 0);
}

function send(target: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true;
    throw error;
  }
}

/**
 * The fields of /proc/<pid>/stat after the process's name (which is in parentheses and may itself
 * contain ") "): state, parent pid, group, ...; undefined when there is no such process.
 */
export async function procStatFields(pid: number | string): Promise<string[] | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => undefined);
  return stat === undefined ? undefined : fieldsAfterName(stat);
}

/** The fields of a /proc/<pid>/stat line after the name (see procStatFields). */
function fieldsAfterName(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * A member of a run's group, or of its session: a run's group leader called `setsid`, so its
 * session has the group's id, and a process that moved to a group of its own (a job of a shell
 * with job control, `set -m`) is still in it. Only `setsid` or a daemon leaves both.
 */
async function isRunningMember(pid: string, pgid: number): Promise<boolean> {
  const [state, , group, session] = (await procStatFields(pid)) ?? [];
  return (group === String(pgid) || session === String(pgid)) && state !== undefined && state !== 'Z';
}

/**
 * How far a scan for the members of session `sid` must look. Its members are made after its
 * leader, so as long as pids have not wrapped around since (the last pid handed out,
 * /proc/sys/kernel/ns_last_pid, is still at or above `sid`), theirs are above `sid`. That holds
 * only for a session begun moments ago (`recent`), where there are at least 32,768 pids
 * (`pid_max`): going all the way around them and past `sid` again then takes thousands of forks
 * a second. (A checkpoint-restore tool that sets ns_last_pid by hand could hand out lower pids;
 * deployhook's commands are not restored that way.) Otherwise, or where a file cannot be read,
 * every pid is read.
 */
function lowestMember(sid: number, recent: boolean): number {
  if (!recent) return 0;
  try {
    if (Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1')) < MANY_PIDS) return 0;
    return Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'latin1')) >= sid ? sid + 1 : 0;
  } catch {
    return 0;
  }
}

/** Linux's default `pid_max`, the least it is on most systems (systemd raises it to 4,194,304). */
const MANY_PIDS = 32_768;

/**
 * The groups of the running processes in session `sid` other than group `sid` itself (see
 * isRunningMember). A synchronous scan of /proc (1.5–3 ms for 75 processes, more on a busy
 * server), made when the run's own group is empty or being stopped; none without /proc. For a
 * session begun moments ago (`recent`), only the pids made since it began are read (see
 * lowestMember): a few, where a run ends.
 */
export function sessionGroups(sid: number, recent = false): number[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc');
  } catch {
    return [];
  }
  const lowest = lowestMember(sid, recent);
  const groups = new Set<number>();
  for (const pid of pids) {
    if (!/^\d+$/.test(pid) || Number(pid) < lowest) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    } catch {
      continue;
    }
    const [state, , group, session] = fieldsAfterName(stat);
    if (session === String(sid) && group !== String(sid) && state !== 'Z' && group !== undefined) groups.add(Number(group));
  }
  return [...groups];
}

/** Sends `signal` to the group and to every other group of its session (see isRunningMember); false when none has a process. */
export function signalGroupAndSession(pgid: number, signal: NodeJS.Signals | 0): boolean {
  let any = signalGroup(pgid, signal);
  for (const group of sessionGroups(pgid)) any = signalGroup(group, signal) || any;
  return any;
}

/**
 * A running process of the group or its session, or undefined when none is left. A member
 * that has exited but was not reaped yet (a zombie, typically an orphan waiting for PID 1)
 * still answers `kill(-pgid, 0)`; /proc tells it apart on Linux, and it does not count.
 * `hint`, a member found earlier, is checked first to spare a scan of /proc while polling.
 * `session`: whether the session is looked at too, and `'recent'` when it began moments ago
 * (see sessionGroups).
 */
async function runningMember(pgid: number, hint?: string, session: boolean | 'recent' = true): Promise<string | undefined> {
  if (hint !== undefined && (await isRunningMember(hint, pgid))) return hint;
  if (!signalGroup(pgid, 0)) {
    if (session === false) return undefined;
    const [other] = sessionGroups(pgid, session === 'recent');
    return other === undefined ? undefined : String(other);
  }
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  } catch {
    return String(pgid); // no /proc: trust kill(), zombies included
  }
  for (const pid of pids) {
    if (await isRunningMember(pid, pgid)) return pid;
  }
  return undefined;
}

/** Whether a process of the group is still running (zombies do not count). */
export async function groupAlive(pgid: number): Promise<boolean> {
  return (await runningMember(pgid)) !== undefined;
}

/**
 * Waits until no process of the group (and, unless `session` is false, of its session) is
 * running; false if some still are after `ms`. `session` is `'recent'` for a session begun
 * moments ago (see sessionGroups).
 */
export async function waitForGroupExit(pgid: number, ms: number, session: boolean | 'recent' = true): Promise<boolean> {
  const deadline = performance.now() + ms;
  let member: string | undefined;
  for (;;) {
    member = await runningMember(pgid, member, session);
    if (member === undefined) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await sleep(Math.min(POLL_MS, left));
  }
}

/**
 * Stops every process of the group and its session, grandchildren included: SIGTERM, then
 * SIGKILL for whatever is still running after `killAfterMs`. Resolves once they are gone.
 */
export async function terminateGroup(pgid: number, killAfterMs: number): Promise<void> {
  if (!signalGroupAndSession(pgid, 'SIGTERM')) return;
  if (await waitForGroupExit(pgid, killAfterMs)) return;
  signalGroupAndSession(pgid, 'SIGKILL');
  await waitForGroupExit(pgid, AFTER_SIGKILL_MS);
}
