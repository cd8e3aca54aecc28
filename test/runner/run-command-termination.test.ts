import { Writable } from 'node:stream';
import { describe, it, expect, afterEach } from 'vitest';
import { runCommand } from '../../src/runner/run-command.js';
import { tempDir } from '../helpers/tmp.js';
import { baseEnv, collect, fixtureScript, isRunning, readPid } from '../helpers/processes.js';

const strays: number[] = [];

afterEach(() => {
  // Only a process that escaped its group on purpose can be left; do not leak it past the test.
  for (const pid of strays.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
});

/** An output that calls `onLine` with each complete line written to it. */
function lineWatcher(onLine: (line: string) => void): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(line);
      callback();
    },
  });
}

describe('runCommand termination', () => {
  it('on timeout kills the whole group, grandchildren included, even when they ignore SIGTERM', async () => {
    const dir = await tempDir();
    const timeoutMs = 1_000;
    const killAfterMs = 500;

    const result = await runCommand({ argv: [fixtureScript('stubborn-family.sh'), dir], cwd: dir, env: baseEnv, output: collect(), timeoutMs, killAfterMs });

    expect(result).toMatchObject({ timedOut: true, cancelled: false, leftovers: false, exitCode: null, signal: 'SIGKILL' });
    expect(result.durationMs).toBeGreaterThanOrEqual(timeoutMs + killAfterMs - 50);
    expect(result.durationMs).toBeLessThan(timeoutMs + killAfterMs + 5_000);
    expect(isRunning(await readPid(dir, 'main.pid'))).toBe(false);
    expect(isRunning(await readPid(dir, 'grandchild.pid'))).toBe(false);
  });

  it('on cancel stops the command at once with SIGTERM when it obeys it', async () => {
    const controller = new AbortController();
    const output = lineWatcher((line) => {
      if (line === 'ready') controller.abort();
    });

    const result = await runCommand({ argv: ['sh', '-c', 'echo ready; exec sleep 60'], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 30_000, killAfterMs: 10_000, signal: controller.signal });

    expect(result).toMatchObject({ cancelled: true, timedOut: false, exitCode: null, signal: 'SIGTERM' });
    expect(result.durationMs).toBeLessThan(5_000);
  });

  it('on cancel kills a stubborn group after the grace period', async () => {
    const dir = await tempDir();
    const controller = new AbortController();
    const output = lineWatcher((line) => {
      if (line === 'ready') controller.abort();
    });

    const result = await runCommand({ argv: [fixtureScript('stubborn-family.sh'), dir], cwd: dir, env: baseEnv, output, timeoutMs: 30_000, killAfterMs: 300, signal: controller.signal });

    expect(result).toMatchObject({ cancelled: true, timedOut: false, signal: 'SIGKILL' });
    expect(isRunning(await readPid(dir, 'grandchild.pid'))).toBe(false);
  });

  it('terminates a background job left running after the main process exits, and resolves promptly', async () => {
    const dir = await tempDir();
    const output = collect();

    const result = await runCommand({ argv: [fixtureScript('leave-background-job.sh'), dir], cwd: dir, env: baseEnv, output, timeoutMs: 30_000, killAfterMs: 2_000 });

    expect(result).toMatchObject({ exitCode: 3, signal: null, leftovers: true, timedOut: false, cancelled: false });
    expect(result.durationMs).toBeLessThan(5_000);
    expect(output.text()).toBe('started\n');
    expect(isRunning(await readPid(dir, 'leftover.pid'))).toBe(false);
  });

  it('does not count a background job that finishes within a moment of the main process as left over', async () => {
    const result = await runCommand({ argv: ['sh', '-c', '(sleep 0.1; echo late) & echo early'], cwd: await tempDir(), env: baseEnv, output: collect(), timeoutMs: 30_000, killAfterMs: 2_000 });

    expect(result).toMatchObject({ exitCode: 0, leftovers: false });
  });

  it('is not held up by a process that left the group but keeps the output pipe open', async () => {
    const dir = await tempDir();
    const output = collect();

    const result = await runCommand({ argv: [fixtureScript('escape-group.sh'), dir], cwd: dir, env: baseEnv, output, timeoutMs: 30_000, killAfterMs: 2_000 });
    strays.push(await readPid(dir, 'escaped.pid'));

    expect(result).toMatchObject({ exitCode: 0, timedOut: false, escaped: true });
    expect(result.durationMs).toBeLessThan(5_000);
    expect(output.text()).toBe('started\n');
  });

  it('stops reading from a process outside the group that keeps printing a few seconds after the group ended, long before the timeout', async () => {
    const dir = await tempDir();

    const result = await runCommand({ argv: [fixtureScript('escape-group.sh'), dir, 'chatty'], cwd: dir, env: baseEnv, output: collect(), timeoutMs: 60_000, killAfterMs: 2_000 });
    strays.push(await readPid(dir, 'escaped.pid'));

    expect(result).toMatchObject({ exitCode: 0, timedOut: false, leftovers: false, escaped: true });
    expect(result.durationMs).toBeGreaterThanOrEqual(5_000);
    expect(result.durationMs).toBeLessThan(10_000);
  });

  it("finds a job a shell with job control moved to a group of its own, in the command's session, and stops it", async () => {
    const dir = await tempDir();
    const output = collect();

    const result = await runCommand({ argv: ['bash', '-c', 'set -m; sleep 300 >/dev/null 2>&1 & echo $! > "$0/job.pid"; echo started', dir], cwd: dir, env: baseEnv, output, timeoutMs: 30_000, killAfterMs: 1_000 });
    const job = await readPid(dir, 'job.pid');
    strays.push(job);

    expect(result).toMatchObject({ exitCode: 0, leftovers: true, escaped: false });
    expect(isRunning(job)).toBe(false);
  });

  it('stops reading from a process outside the group that keeps printing once the timeout is reached', async () => {
    const dir = await tempDir();
    const timeoutMs = 1_500;

    const result = await runCommand({ argv: [fixtureScript('escape-group.sh'), dir, 'chatty'], cwd: dir, env: baseEnv, output: collect(), timeoutMs, killAfterMs: 2_000 });
    strays.push(await readPid(dir, 'escaped.pid'));

    expect(result).toMatchObject({ exitCode: 0, timedOut: false, leftovers: false });
    expect(result.durationMs).toBeGreaterThanOrEqual(timeoutMs);
    expect(result.durationMs).toBeLessThan(timeoutMs + 3_000);
  });
});
