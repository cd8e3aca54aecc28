import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { currentBootId, stopOrphanGroup } from '../../src/runner/orphan-group.js';
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
