import { execFileSync } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CAPTURE_WORKER, captureProblems, captureThreads } from '../../src/log/capture-thread.js';
import { openRunLog } from '../../src/log/run-log.js';
import { PipeMaker, reopenReadEnd } from '../../src/runner/output-pipes.js';
import { runCommand } from '../../src/runner/run-command.js';
import { baseEnv, fixtureScript, isRunning, readPid } from '../helpers/processes.js';
import { expectedLog } from '../helpers/capped-log.js';
import { tempDir } from '../helpers/tmp.js';

const strays: number[] = [];
// What the daemon would log as warnings: once per kind in a process, so once in this file.
const problems: Array<[string, string]> = [];
captureProblems.onProblem = (kind, reason) => problems.push([kind, reason]);

afterEach(() => {
  for (const pid of strays.splice(0)) if (isRunning(pid)) process.kill(pid, 'SIGKILL');
});

const secret = 'ghp_capture0thread0secret0123456789';
/** A command's stdout: the secret, ~19 MB of numbered lines, the secret again. */
const FLOOD = 'echo "token=$S"; seq 1 2500000; echo "token=$S"';

function floodOutput(): Buffer {
  return Buffer.concat([Buffer.from('token=***\n'), execFileSync('seq', ['1', '2500000'], { maxBuffer: 64 * 1024 * 1024 }), Buffer.from('token=***\n')]);
}

async function flood(maxBytes: number, options: { captureWorker?: string } = {}) {
  const dir = await tempDir();
  const path = join(dir, 'run.log');
  const log = await openRunLog(path, [secret], maxBytes, options);
  const [started, completed] = [captureThreads.started, captureThreads.completed];
  const result = await runCommand({ argv: ['sh', '-c', FLOOD], cwd: dir, env: { ...baseEnv, S: secret }, output: log.output, takePipes: log.pipeTaker, timeoutMs: 60_000, killAfterMs: 1_000 });
  await log.close('done');
  return { result, log, path, text: await readFile(path), files: await readdir(dir), started: captureThreads.started - started, completed: captureThreads.completed - completed };
}

describe('a chatty command read by a capture thread', () => {
  it.each([1024 * 1024, 64 * 1024 * 1024])('writes exactly the log the event loop would have, masked and capped (max_log_bytes %i)', async (maxBytes) => {
    const { result, log, text, files, completed } = await flood(maxBytes);
    expect(result).toMatchObject({ exitCode: 0, timedOut: false });
    // The thread read the output and gave the log back (not the event loop after a failed start).
    expect(completed).toBe(1);
    expect(log.error).toBeUndefined();
    expect(text.equals(Buffer.concat([expectedLog(floodOutput(), maxBytes), Buffer.from('[deployhook] done\n')]))).toBe(true);
    expect(text.includes(secret.slice(0, 12))).toBe(false);
    expect(files).toEqual(['run.log']);
    expect(captureThreads.running).toBe(0);
  });

  it('is not held up by a process that left the group but keeps the pipe open, and keeps reading one that keeps printing until the timeout', async () => {
    for (const mode of ['quiet', 'chatty']) {
      const dir = await tempDir();
      const path = join(dir, 'run.log');
      const log = await openRunLog(path, [], 1024 * 1024);
      const completed = captureThreads.completed;
      const timeoutMs = mode === 'chatty' ? 2_500 : 30_000;
      const argv = ['sh', '-c', 'seq 1 1000000; exec "$0" "$1" "$2"', fixtureScript('escape-group.sh'), dir, mode];
      const result = await runCommand({ argv, cwd: dir, env: baseEnv, output: log.output, takePipes: log.pipeTaker, timeoutMs, killAfterMs: 1_000 });
      strays.push(await readPid(dir, 'escaped.pid'));
      await log.close('done');
      const text = await readFile(path, 'utf8');
      expect(captureThreads.completed - completed).toBe(1);
      expect(result).toMatchObject({ exitCode: 0, timedOut: false });
      if (mode === 'quiet') expect(result.durationMs).toBeLessThan(5_000);
      else expect(result.durationMs).toBeGreaterThanOrEqual(timeoutMs);
      // The ticks of the escaped process came through the thread until the reading stopped.
      if (mode === 'chatty') expect(text).toMatch(/tick\n(\[deployhook\] done\n)$/);
      else expect(text.endsWith('started\n[deployhook] done\n')).toBe(true);
      expect(captureThreads.running).toBe(0);
    }
  });

  it('reads the pipes on the event loop when the thread cannot start, and the log is still whole', async () => {
    const { result, log, text, started, completed } = await flood(64 * 1024 * 1024, { captureWorker: join(await tempDir(), 'missing.js') });
    expect(result).toMatchObject({ exitCode: 0 });
    expect([started, completed]).toEqual([1, 0]);
    expect(problems.filter(([kind]) => kind === 'start')).toEqual([['start', expect.stringContaining('missing.js')]]);
    expect(log.error).toBeUndefined();
    expect(text.equals(Buffer.concat([floodOutput(), Buffer.from('[deployhook] done\n')]))).toBe(true);
  });

  it('marks the log as failed when the thread fails after it began reading, and the command still runs to its end', async () => {
    const entry = join(await tempDir(), 'fails.mjs');
    await writeFile(entry, "import { parentPort, workerData } from 'node:worker_threads';\nAtomics.store(new Int32Array(workerData.signals), 1, 1);\nparentPort.postMessage({ type: 'reading' });\nsetTimeout(() => { throw new Error('the thread broke'); }, 10);\n");
    const { result, log, completed } = await flood(1024 * 1024, { captureWorker: entry });
    expect(result).toMatchObject({ exitCode: 0, timedOut: false });
    expect(completed).toBe(0);
    expect(log.error?.message).toBe("the thread that captured the command's output failed: the thread broke");
    // The first thread of this file to fail after it began.
    expect(problems.filter(([kind]) => kind === 'failed')).toEqual([['failed', 'the thread broke']]);
  });

  it('leaves no descriptor of the spill segments open when a thread ends in the middle of the output', async () => {
    const entry = join(await tempDir(), 'dies-spilling.mjs');
    // The real thread, ended right after its first write to a spill segment (process.exit in a
    // thread ends the thread). node closes what the thread opened (the Worker's trackUnmanagedFds).
    await writeFile(
      entry,
      [
        "import fs from 'node:fs';",
        "import { syncBuiltinESMExports } from 'node:module';",
        'const writevSync = fs.writevSync;',
        'fs.writevSync = (...args) => { writevSync(...args); process.exit(7); };',
        'syncBuiltinESMExports();',
        `await import(${JSON.stringify(CAPTURE_WORKER)});`,
        '',
      ].join('\n'),
    );
    const { result, log, path } = await flood(1024 * 1024, { captureWorker: entry });
    expect(result).toMatchObject({ exitCode: 0, timedOut: false });
    expect(log.error?.message).toBe("the thread that captured the command's output failed: it exited with code 7");
    const open = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
    expect(open.filter((target) => target.startsWith(`${path}.tail-`))).toEqual([]);
  });

  it("reads the rest of the pipes on the event loop when the thread's loop fails, so the command runs to its end", async () => {
    const entry = join(await tempDir(), 'loop-fails.mjs');
    // Gives the log back at once, marked as failed, as the thread does when its loop throws.
    await writeFile(entry, "import { parentPort, workerData } from 'node:worker_threads';\nAtomics.store(new Int32Array(workerData.signals), 1, 1);\nparentPort.postMessage({ type: 'done', state: { ...workerData.state, failure: 'the loop broke' }, failed: true });\n");
    const { result, log, completed } = await flood(1024 * 1024, { captureWorker: entry });
    expect(result).toMatchObject({ exitCode: 0, signal: null, timedOut: false });
    expect(completed).toBe(0);
    expect(log.error?.message).toBe('the loop broke');
  });

  it('terminates a thread that does not give the log back after being told to stop, and marks the log as failed', async () => {
    const dir = await tempDir();
    const entry = join(dir, 'hangs.mjs');
    await writeFile(entry, "import { parentPort, workerData } from 'node:worker_threads';\nAtomics.store(new Int32Array(workerData.signals), 1, 1);\nparentPort.postMessage({ type: 'reading' });\nsetInterval(() => {}, 1000);\n");
    const log = await openRunLog(join(dir, 'run.log'), [], 1024 * 1024, { captureWorker: entry });
    const [pipe] = (await new PipeMaker({ parent: dir }).take(1)) ?? [];
    if (!pipe) throw new Error('expected a pipe');
    const fd = reopenReadEnd(pipe.read);
    closeSync(pipe.read);
    if (fd === undefined) throw new Error('expected to open the pipe again');
    const [stream] = log.pipeTaker.take([{ fd, channel: 'stdout' }]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const told = performance.now();
    stream?.destroy();
    await log.close('done');
    closeSync(pipe.write);
    expect(performance.now() - told).toBeGreaterThanOrEqual(4_900);
    expect(log.error?.message).toBe("the thread that captured the command's output failed: it exited with code 1");
  }, 15_000);

  it('reads what the pipe still holds when the daemon stops waiting for it, so the last output is kept', async () => {
    const dir = await tempDir();
    const path = join(dir, 'run.log');
    const log = await openRunLog(path, [], 1024 * 1024);
    const [pipe] = (await new PipeMaker({ parent: dir }).take(1)) ?? [];
    if (!pipe) throw new Error('expected a pipe');
    // The write end stays open, as a process outside the command's group would keep it.
    writeSync(pipe.write, 'the last lines\nof the command\n');
    const fd = reopenReadEnd(pipe.read);
    closeSync(pipe.read);
    if (fd === undefined) throw new Error('expected to open the pipe again');
    const completed = captureThreads.completed;
    const [stream] = log.pipeTaker.take([{ fd, channel: 'stdout' }]);
    // Given up on at once, before the thread has read anything.
    stream?.destroy();
    await log.close('done');
    closeSync(pipe.write);
    expect(captureThreads.completed - completed).toBe(1);
    expect(await readFile(path, 'utf8')).toBe('the last lines\nof the command\n[deployhook] done\n');
  });
});

const notRoot = process.geteuid?.() !== 0;

// Switching users needs root, as run_as does; CI runs as root, so there it must not skip.
describe.skipIf(notRoot && !process.env.CI)('a chatty command run as another user', () => {
  it("is read by a capture thread too, although its pipes are the user's (a daemon running as root opens them again)", async () => {
    const dir = await tempDir();
    const path = join(dir, 'run.log');
    const log = await openRunLog(path, [secret], 1024 * 1024);
    const completed = captureThreads.completed;
    const result = await runCommand({ argv: ['sh', '-c', `id -u; ${FLOOD}`], cwd: '/', env: { ...baseEnv, S: secret }, output: log.output, takePipes: log.pipeTaker, timeoutMs: 60_000, killAfterMs: 1_000, user: { uid: 65534, gid: 65534 } });
    await log.close('done');
    expect(result).toMatchObject({ exitCode: 0 });
    expect(captureThreads.completed - completed).toBe(1);
    const text = await readFile(path);
    expect(text.equals(Buffer.concat([expectedLog(Buffer.concat([Buffer.from('65534\n'), floodOutput()]), 1024 * 1024), Buffer.from('[deployhook] done\n')]))).toBe(true);
  });
});
