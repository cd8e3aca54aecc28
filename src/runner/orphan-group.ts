import { readdir, readFile, stat } from 'node:fs/promises';
import { procStatFields, sessionGroups, signalGroup, terminateGroup } from './kill-group.js';

/** When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); undefined if it is gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  return startTimeIn(await procStatFields(pid));
}

/** The start time in a process's stat fields (procStatFields': field 22 is the 20th after the name). */
function startTimeIn(fields: readonly string[] | undefined): string | undefined {
  return fields?.[19];
}

let bootId: Promise<string> | undefined;

/**
 * This boot's id: pids, process groups and start times (ticks since boot) mean something only
 * within one boot. It does not change while the process lives: read once.
 */
export function currentBootId(): Promise<string> {
  return (bootId ??= readFile('/proc/sys/kernel/random/boot_id', 'utf8').then((text) => text.trim(), () => ''));
}

/**
 * Stops what is left of a run's process group after the daemon died without stopping it
 * (kill -9, a crash). Never a group of another boot: after a reboot (a power cut) every
 * process of the run is gone, and its group id may name someone else's group. Within the
 * boot, the group is ours when its leader is gone but members remain (Linux never hands out
 * a pid that is still a group id), or when the leader is alive and started at the recorded
 * time; a reused pid with another start time is left alone. Records written before the boot
 * id was kept have none, and are judged as before. Never the daemon's own group or session (a
 * daemon started by a run's command, in its group, say).
 */
export async function stopOrphanGroup(pgid: number, startTime: string | undefined, killAfterMs: number, bootId?: string): Promise<boolean> {
  if (bootId !== undefined && bootId !== (await currentBootId())) return false;
  const [, , ownGroup, ownSession] = (await procStatFields('self')) ?? [];
  if (String(pgid) === ownGroup || String(pgid) === ownSession) return false;
  // The group, or a process of its session that moved to a group of its own.
  if (!signalGroup(pgid, 0) && sessionGroups(pgid).length === 0) return false;
  const leaderStart = await processStartTime(pgid);
  if (leaderStart !== undefined && startTime !== undefined && leaderStart !== startTime) return false;
  await terminateGroup(pgid, killAfterMs);
  return true;
}

/** A process group found by what its processes carry in their environment (see groupsCarrying). */
export interface CarryingGroup {
  pgid: number;
  /** Its leader's start time, when the leader is one of the processes found; undefined when the leader is gone. */
  leaderStart: string | undefined;
}

/**
 * The process groups whose running processes have `name=<value>` in their environment, for
 * each value asked, counting only processes of the users given with it (whoever else sets the
 * variable is not one of ours): one pass over /proc, reading each process's `environ` (root
 * reads every process's, another user only its own). A group whose leader runs but does not
 * count is left out: the leader is someone else's. So is this process's own group and session.
 * Recovery finds a command this way when the daemon died before the command's group was saved
 * (see recover.ts); its descendants carry the same variable unless they dropped their
 * environment.
 */
export async function groupsCarrying(name: string, wanted: ReadonlyMap<string, ReadonlySet<number>>): Promise<Map<string, CarryingGroup[]>> {
  const found = new Map<string, CarryingGroup[]>();
  if (wanted.size === 0) return found;
  const pids = await readdir('/proc').catch(() => [] as string[]);
  const prefix = Buffer.from(`${name}=`);
  const [, , ownGroup, ownSession] = (await procStatFields('self')) ?? [];
  /** pgid -> the value its processes carry, and the pids that carry it. */
  const carriers = new Map<number, { value: string; pids: Set<number> }>();
  for (const entry of pids) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    const [state, , group, session] = (await procStatFields(pid)) ?? [];
    if (state === undefined || state === 'Z' || group === undefined || group === ownGroup || session === ownSession) continue;
    const value = carriedValue(await readFile(`/proc/${pid}/environ`).catch(() => undefined), prefix);
    const owners = value === undefined ? undefined : wanted.get(value);
    if (value === undefined || owners === undefined || !owners.has(await ownerOf(pid))) continue;
    const pgid = Number(group);
    const known = carriers.get(pgid) ?? { value, pids: new Set<number>() };
    known.pids.add(pid);
    carriers.set(pgid, known);
  }
  for (const [pgid, { value, pids: members }] of carriers) {
    // A leader that runs without carrying the value is another program's. Its state and start
    // time come from one read of its stat.
    const leader = await procStatFields(pgid);
    const [leaderState] = leader ?? [];
    if (leaderState !== undefined && leaderState !== 'Z' && !members.has(pgid)) continue;
    const leaderStart = members.has(pgid) ? startTimeIn(leader) : undefined;
    found.set(value, [...(found.get(value) ?? []), { pgid, leaderStart }]);
  }
  return found;
}

/** The process's effective user (the owner of /proc/<pid>; root for one that is not dumpable, a setuid program's); -1 when it is gone. */
async function ownerOf(pid: number): Promise<number> {
  return (await stat(`/proc/${pid}`).catch(() => undefined))?.uid ?? -1;
}

/** The value of the variable `prefix` (`NAME=`) names in an environ (NUL-separated), if any. */
function carriedValue(environ: Buffer | undefined, prefix: Buffer): string | undefined {
  for (let start = 0; environ !== undefined && start < environ.length; ) {
    const end = environ.indexOf(0, start);
    const stop = end === -1 ? environ.length : end;
    if (environ.subarray(start, start + prefix.length).equals(prefix)) return environ.subarray(start + prefix.length, stop).toString('utf8');
    start = stop + 1;
  }
  return undefined;
}
