import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { currentBootId, groupsCarrying, processStartTime, stopOrphanGroup } from '../../src/runner/orphan-group.js';
import { isRunning } from '../helpers/processes.js';

/** A process group whose leader has exited and whose one member, a sleep, is left: what a run killed with the daemon leaves. */
async function leaderlessGroup(): Promise<{ pgid: number; member: number }> {
  const child = spawn('sh', ['-c', 'sleep 30 & echo $!'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await new Promise((resolve) => child.once('exit', resolve));
  return { pgid: child.pid as number, member: Number(out.trim()) };
}

describe('stopOrphanGroup', () => {
  it('leaves alone a group recorded in another boot, and stops one of this boot', async () => {
    const { pgid, member } = await leaderlessGroup();
    try {
      expect(isRunning(member)).toBe(true);
      // After a reboot the recorded group id may name someone else's group.
      expect(await stopOrphanGroup(pgid, '1', 500, 'a-boot-that-is-over')).toBe(false);
      expect(isRunning(member)).toBe(true);
      expect(await stopOrphanGroup(pgid, '1', 500, await currentBootId())).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(isRunning(member)).toBe(false);
    } finally {
      if (isRunning(member)) process.kill(member, 'SIGKILL');
    }
  });
});

describe('groupsCarrying', () => {
  /** A group of its own: `sh` (the leader, with `leaderEnv`) and one `sleep` with `memberEnv`, both printed. */
  async function group(leaderEnv: Record<string, string>, memberEnv: string, leaderExits = false): Promise<{ pgid: number; member: number }> {
    const script = `env ${memberEnv} sleep 30 & echo $!; ${leaderExits ? '' : 'wait'}`;
    const child = spawn('sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...leaderEnv } });
    const member = await new Promise<number>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
    if (leaderExits) await new Promise((resolve) => child.once('exit', resolve));
    return { pgid: child.pid as number, member };
  }

  it("finds the groups whose processes carry a value asked for, and not a group whose running leader is another program", async () => {
    const asked = `run-${String(process.pid)}-${String(Date.now())}`;
    const carrying = await group({ DEPLOYHOOK_RUN_ID: asked }, `DEPLOYHOOK_RUN_ID=${asked}`);
    const leaderless = await group({ DEPLOYHOOK_RUN_ID: asked }, `DEPLOYHOOK_RUN_ID=${asked}`, true);
    const foreignLeader = await group({}, `DEPLOYHOOK_RUN_ID=${asked}`);
    const other = await group({ DEPLOYHOOK_RUN_ID: `${asked}-other` }, `DEPLOYHOOK_RUN_ID=${asked}-other`);
    try {
      const mine = new Set([process.getuid?.() ?? -1]);
      const found = await groupsCarrying('DEPLOYHOOK_RUN_ID', new Map([[asked, mine], ['nobody-carries-this', mine]]));
      expect([...found.keys()]).toEqual([asked]);
      const groups = [...(found.get(asked) ?? [])].sort((a, b) => a.pgid - b.pgid);
      expect(groups).toEqual(
        [
          { pgid: carrying.pgid, leaderStart: await processStartTime(carrying.pgid) },
          { pgid: leaderless.pgid, leaderStart: undefined },
        ].sort((a, b) => a.pgid - b.pgid),
      );
      expect(await groupsCarrying('DEPLOYHOOK_RUN_ID', new Map())).toEqual(new Map());
      // Processes of another user (uid 2^31, nobody's) do not count.
      expect(await groupsCarrying('DEPLOYHOOK_RUN_ID', new Map([[asked, new Set([2 ** 31])]]))).toEqual(new Map());
    } finally {
      for (const { pgid, member } of [carrying, leaderless, foreignLeader, other]) {
        for (const pid of [pgid, member]) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
      }
    }
  });
});
