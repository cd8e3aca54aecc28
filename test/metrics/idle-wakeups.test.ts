import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startServe } from '../helpers/cli.js';
import { writeConfigFile } from '../helpers/config-file.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'idle-wakeups-secret-0123456789abcd';

/** How often a thread has given up its core to wait so far: once per wake-up (preemptions, which a busy host adds, are not counted). */
async function waitsOf(pid: number, tid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/task/${tid}/status`, 'utf8');
  return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? Number.NaN);
}

describe('an idle daemon', () => {
  it('after a run (which loads the metrics), wakes its main thread only a few times a second', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const config = join(dir, 'deployhook.yml');
    await writeConfigFile(config, { jobs: [{ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: remote.bare, command: ['true'] }] });
    const daemon = await startServe(['--config', config], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SECRET } });
    try {
      const pid = daemon.process.pid as number;
      const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
      const response = await fetch(`http://127.0.0.1:${daemon.port}/hooks/github`, { method: 'POST', body, headers: await githubHeaders(body, SECRET) });
      const [run] = ((await response.json()) as { runs: Array<{ id: string }> }).runs;
      expect((await waitForRun(join(dir, 'state'), 'app', run?.id ?? '')).status).toBe('succeeded');
      // The run's end loaded the metrics: prom-client and its default collectors, the event loop's delay among them.
      // The run's last steps (git's housekeeping, the record's batch put in place) are over by then.
      await sleep(1_500);
      const before = await waitsOf(pid, pid);
      await sleep(2_000);
      const woken = (await waitsOf(pid, pid)) - before;
      // Sampling the event loop's delay every 10 ms, it woke ~200 times in these 2 s; every 100 ms, ~20.
      expect(woken, `${String(woken)} wake-ups in 2 s`).toBeLessThan(60);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});
