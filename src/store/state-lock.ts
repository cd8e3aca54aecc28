import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DeployhookError } from '../errors.js';
import { currentBootId as bootId, processStartTime } from '../runner/orphan-group.js';

const LOCK_FILE = 'deployhook.lock';

interface Holder {
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the boot id, tells the holder from a reused pid. */
  startTime: string;
  bootId: string;
}

function holderOf(text: string): Holder | undefined {
  try {
    const parsed = JSON.parse(text) as Partial<Holder>;
    if (Number.isSafeInteger(parsed.pid) && typeof parsed.startTime === 'string' && typeof parsed.bootId === 'string') return parsed as Holder;
  } catch {
    // Not a lock this code wrote: nobody holds it.
  }
  return undefined;
}

async function isAlive(holder: Holder): Promise<boolean> {
  return holder.bootId === (await bootId()) && (await processStartTime(holder.pid)) === holder.startTime;
}

/**
 * Makes this process the only daemon using `stateDir`: a second one would take the first's
 * runs for runs of a dead daemon (stopping their commands) and fold its journal in under it.
 * The lock is a file naming this process (pid, start time, boot), made whole before it gets
 * its name (written aside, then linked), so nobody ever reads it half-written. One that names
 * a process no longer running (a crash, a power cut) is taken over: renamed aside, checked
 * again there (a newcomer's fresh lock is put back), and removed. It tells processes apart
 * within one host and pid namespace: not across machines sharing a state folder.
 * Resolves with the release.
 */
export async function lockStateDir(stateDir: string): Promise<() => Promise<void>> {
  const path = join(stateDir, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, startTime: await processStartTime(process.pid), bootId: await bootId() });
  const release = async () => {
    // Only our own lock: never one another daemon took over meanwhile.
    if ((await readFile(path, 'utf8').catch(() => '')).trim() === mine) await rm(path, { force: true });
  };
  for (let attempt = 0; attempt < 3; attempt += 1) {
    if (await linkWhole(path, `${mine}\n`)) return release;
    const seen = await readFile(path, 'utf8').catch(() => undefined);
    if (seen === undefined) continue; // removed meanwhile: try again
    const holder = holderOf(seen);
    if (holder !== undefined && (await isAlive(holder))) throw inUse(stateDir, path, holder.pid);
    // Stale: move it aside; if what was moved is not what was judged stale, it was a
    // newcomer's fresh lock, which goes back under its name.
    const aside = `${path}.stale-${process.pid}-${attempt}`;
    if (!(await rename(path, aside).then(() => true, () => false))) continue;
    const moved = await readFile(aside, 'utf8').catch(() => '');
    if (moved !== seen) {
      await link(aside, path).catch(() => undefined);
      await rm(aside, { force: true });
      const newcomer = holderOf(moved);
      throw inUse(stateDir, path, newcomer?.pid);
    }
    await rm(aside, { force: true });
  }
  throw inUse(stateDir, path, undefined);
}

/** Creates `path` with `content` only if nothing has that name: written aside, then linked. */
async function linkWhole(path: string, content: string): Promise<boolean> {
  const aside = `${path}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(aside, content, { mode: 0o644 });
  try {
    await link(aside, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  } finally {
    await rm(aside, { force: true });
  }
}

function inUse(stateDir: string, path: string, pid: number | undefined): DeployhookError {
  const who = pid === undefined ? 'another process' : `process ${pid}`;
  return new DeployhookError(
    'STATE_DIR_IN_USE',
    `Expected to be the only deployhook using state_dir ${stateDir}, but ${who} holds ${path}. Stop that daemon first (is the service running? systemctl stop deployhook), or give this one a state_dir of its own.`,
  );
}
