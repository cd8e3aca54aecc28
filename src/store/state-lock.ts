import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployhookError } from '../errors.js';
import { processStartTime } from '../runner/orphan-group.js';

const LOCK_FILE = 'deployhook.lock';

interface Holder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the boot id, tells the holder from a reused pid. */
  startTime: string;
  bootId: string;
}

async function bootId(): Promise<string> {
  return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
}

async function holderOf(path: string): Promise<Holder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<Holder>;
    if (Number.isSafeInteger(parsed.pid) && typeof parsed.startTime === 'string' && typeof parsed.bootId === 'string') return parsed as Holder;
  } catch {
    // Unreadable or cut short (a crash while it was written): nobody holds it.
  }
  return undefined;
}

async function isAlive(holder: Holder): Promise<boolean> {
  return holder.bootId === (await bootId()) && (await processStartTime(holder.pid)) === holder.startTime;
}

/**
 * Makes this process the only daemon using `stateDir`: a second one would take the first's
 * runs for runs of a dead daemon (stopping their commands) and fold its journal in under it.
 * The lock is a file naming this process (pid, start time, boot); one that names a process
 * no longer running (a crash, a power cut) is taken over. Resolves with the release.
 */
export async function lockStateDir(stateDir: string): Promise<() => Promise<void>> {
  const path = join(stateDir, LOCK_FILE);
  const startTime = await processStartTime(process.pid);
  const mine = JSON.stringify({ pid: process.pid, startTime, bootId: await bootId() });
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await writeFile(path, `${mine}\n`, { flag: 'wx', mode: 0o644 });
      return async () => {
        // Only our own lock: never one another daemon took over meanwhile.
        if ((await readFile(path, 'utf8').catch(() => '')).trim() === mine) await rm(path, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await holderOf(path);
    if (holder !== undefined && (await isAlive(holder))) {
      throw new DeployhookError(
        'STATE_DIR_IN_USE',
        `Expected to be the only deployhook using state_dir ${stateDir}, but process ${holder.pid} holds ${path}. Stop that daemon first (is the service running? systemctl stop deployhook), or give this one a state_dir of its own.`,
      );
    }
    await rm(path, { force: true });
  }
  throw new DeployhookError('STATE_DIR_IN_USE', `Expected to take ${path}, but another deployhook took it at the same moment`);
}
