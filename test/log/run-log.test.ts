import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openRunLog } from '../../src/log/run-log.js';
import { runCommand } from '../../src/runner/run-command.js';
import { baseEnv } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';

describe('openRunLog', () => {
  it('masks every secret in notes, output split across writes, the held-back end and the closing line', async () => {
    const path = join(await tempDir(), 'logs', 'run.log');
    const log = await openRunLog(path, ['s3cr3t-token'], 1024 * 1024);

    log.note('using s3cr3t-token');
    log.output.write('a split s3cr');
    log.output.write('3t-token here\nthe end: s3cr');
    await log.close('run ended (token s3cr3t-token)');

    expect(await readFile(path, 'utf8')).toBe('[deployhook] using ***\na split *** here\nthe end: s3cr\n[deployhook] run ended (token ***)\n');
    expect(log.error).toBeUndefined();
  });

  it('adds no blank line before the closing line when the output ended its last line', async () => {
    const path = join(await tempDir(), 'run.log');
    const log = await openRunLog(path, [], 1024);

    log.output.write('done\n');
    await log.close('finished');

    expect(await readFile(path, 'utf8')).toBe('done\n[deployhook] finished\n');
  });
});

describe('a command writing a secret in two pieces with stderr in between', () => {
  it('masks the secret in its own stream: stdout is put together whatever stderr wrote between its pieces', async () => {
    const path = join(await tempDir(), 'run.log');
    const secret = 'supersecretwebhook0123456789';
    const log = await openRunLog(path, [secret], 1024 * 1024);
    // Each piece is its own write, far enough apart in time to reach the daemon as separate chunks.
    const script = 'printf "url=https://x:%s" "$A"; sleep 0.2; echo "warning: something" >&2; sleep 0.2; printf "%s@host/\\n" "$B"';
    const env = { ...baseEnv, A: secret.slice(0, 10), B: secret.slice(10) };
    const result = await runCommand({ argv: ['sh', '-c', script], cwd: await tempDir(), env, output: log.output, timeoutMs: 10_000, killAfterMs: 1_000 });
    expect(result.exitCode).toBe(0);
    await log.close('done');
    const text = await readFile(path, 'utf8');
    expect(text).toContain('warning: something');
    // The stdout masker held the first piece back until the second came: the mask follows stderr's line.
    expect(text).toContain('url=https://x:warning: something\n***@host/\n');
    expect(text).not.toContain(secret.slice(0, 10));
    expect(text).not.toContain(secret.slice(10));
  });
});
