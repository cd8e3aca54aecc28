import { readFile } from 'node:fs/promises';
import { signalGroup, terminateGroup } from './kill-group.js';

/** When the process started, in clock ticks since boot (field 22 of /proc/<pid>/stat); undefined if it is gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1').catch(() => undefined);
  if (stat === undefined) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/**
 * Stops what is left of a run's process group after the daemon died without stopping it
 * (kill -9, a crash). The group is ours when its leader is gone but members remain (Linux
 * never hands out a pid that is still a group id), or when the leader is alive and started
 * at the recorded time; a reused pid with another start time is left alone.
 */
export async function stopOrphanGroup(pgid: number, startTime: string | undefined, killAfterMs: number): Promise<boolean> {
  if (!signalGroup(pgid, 0)) return false;
  const leaderStart = await processStartTime(pgid);
  if (leaderStart !== undefined && startTime !== undefined && leaderStart !== startTime) return false;
  await terminateGroup(pgid, killAfterMs);
  return true;
}
