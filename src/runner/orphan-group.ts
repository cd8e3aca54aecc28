import { readFile } from 'node:fs/promises';
import { procStatFields, sessionGroups, signalGroup, terminateGroup } from './kill-group.js';

/** When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); undefined if it is gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  return (await procStatFields(pid))?.[19];
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
 * id was kept have none, and are judged as before.
 */
export async function stopOrphanGroup(pgid: number, startTime: string | undefined, killAfterMs: number, bootId?: string): Promise<boolean> {
  if (bootId !== undefined && bootId !== (await currentBootId())) return false;
  // The group, or a process of its session that moved to a group of its own.
  if (!signalGroup(pgid, 0) && sessionGroups(pgid).length === 0) return false;
  const leaderStart = await processStartTime(pgid);
  if (leaderStart !== undefined && startTime !== undefined && leaderStart !== startTime) return false;
  await terminateGroup(pgid, killAfterMs);
  return true;
}
