import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterEach } from 'vitest';

const execFileAsync = promisify(execFile);
const mounted: string[] = [];

/**
 * Mounts a tmpfs of `sizeKb` at `dir` for the current test: a real disk that fills up or
 * refuses writes. Needs root (as CI and the development machines run); the test fails,
 * loudly, where mounting is not allowed.
 */
export async function mountTmpfs(dir: string, sizeKb: number, options: { readOnly?: boolean } = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  try {
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKb}k,mode=0755${options.readOnly ? ',ro' : ''}`, 'tmpfs', dir]);
  } catch (error) {
    throw new Error(`Could not mount a tmpfs at ${dir} (the disk-full tests need root): ${(error as Error).message}`, { cause: error });
  }
  mounted.push(dir);
}

afterEach(async () => {
  for (const dir of mounted.splice(0).reverse()) await execFileAsync('umount', ['-l', dir]).catch(() => undefined);
});
