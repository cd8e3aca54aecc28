import { readdir, realpath } from 'node:fs/promises';
import { describe, it, expect } from 'vitest';
import { DeployhookError } from '../../src/errors.js';
import { runCommand, type CommandOptions } from '../../src/runner/run-command.js';
import { tempDir } from '../helpers/tmp.js';
import { baseEnv, collect } from '../helpers/processes.js';

async function run(argv: readonly string[], overrides: Partial<CommandOptions> = {}) {
  const output = collect();
  const result = await runCommand({ argv, cwd: await tempDir(), env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, ...overrides });
  return { result, text: output.text() };
}

describe('runCommand', () => {
  it('streams both stdout and stderr to the output and reports a clean exit', async () => {
    const { result, text } = await run(['sh', '-c', 'echo to-stdout; echo to-stderr >&2; echo again']);

    expect(text.split('\n').sort()).toEqual(['', 'again', 'to-stderr', 'to-stdout']);
    expect(result).toMatchObject({ exitCode: 0, signal: null, timedOut: false, cancelled: false, leftovers: false });
    expect(result.startError).toBeUndefined();
  });

  it('gives the command exactly the environment it was given, nothing of the test process', async () => {
    process.env.DEPLOYHOOK_TEST_UNLISTED = 'must not leak';
    try {
      const { text } = await run(['env'], { env: { ...baseEnv, DEPLOY_REF: 'refs/heads/main' } });

      const names = text.trim().split('\n').map((line) => line.slice(0, line.indexOf('=')));
      expect(names.sort()).toEqual(['DEPLOY_REF', 'PATH']);
      expect(text).toContain('DEPLOY_REF=refs/heads/main\n');
    } finally {
      delete process.env.DEPLOYHOOK_TEST_UNLISTED;
    }
  });

  it('passes arguments literally, without a shell to interpret them', async () => {
    const cwd = await tempDir();
    const dangerous = ['$(touch pwned)', ';touch pwned2', '`touch pwned3`', '&& touch pwned4', '*'];

    const { result, text } = await run(['printf', '%s\\n', ...dangerous], { cwd });

    expect(result.exitCode).toBe(0);
    expect(text).toBe(dangerous.map((arg) => `${arg}\n`).join(''));
    expect(await readdir(cwd)).toEqual([]);
  });

  it('runs the command in the given working folder', async () => {
    const cwd = await tempDir();

    const { text } = await run([process.execPath, '-e', 'console.log(process.cwd())'], { cwd });

    expect(text.trim()).toBe(await realpath(cwd));
  });

  it('reports a non-zero exit code', async () => {
    const { result } = await run(['sh', '-c', 'exit 7']);

    expect(result).toMatchObject({ exitCode: 7, signal: null, timedOut: false, leftovers: false });
  });

  it('reports the signal that killed the command, with no exit code', async () => {
    const { result } = await run(['sh', '-c', 'kill -KILL $$']);

    expect(result).toMatchObject({ exitCode: null, signal: 'SIGKILL', timedOut: false, cancelled: false });
  });

  it('reports a command that does not exist as a start error and writes one line about it', async () => {
    const { result, text } = await run(['deployhook-no-such-command', '--flag']);

    expect(result).toMatchObject({ exitCode: null, signal: null, startError: 'command not found: deployhook-no-such-command' });
    expect(text).toBe('command not found: deployhook-no-such-command\n');
  });

  it('reports a missing working folder as such rather than as a missing command', async () => {
    const missing = `${await tempDir()}/nope`;

    const { result } = await run(['sh', '-c', 'true'], { cwd: missing });

    expect(result.startError).toBe(`working folder not found: ${missing}`);
  });

  it('reports what node refuses to start with (a NUL byte in the environment) as a start error instead of throwing', async () => {
    const { result, text } = await run(['sh', '-c', 'true'], { env: { ...baseEnv, BAD: 'a\u0000b' } });

    expect(result).toMatchObject({ exitCode: null, signal: null });
    expect(result.startError).toMatch(/BAD|null bytes/);
    expect(text).toBe(`${result.startError ?? ''}\n`);
  });

  it('does not start a command whose run is already cancelled or out of time', async () => {
    const cwd = await tempDir();
    const argv = ['touch', 'started'];

    const cancelled = await run(argv, { cwd, signal: AbortSignal.abort() });
    const outOfTime = await run(argv, { cwd, timeoutMs: 0 });

    expect(cancelled.result).toMatchObject({ cancelled: true, timedOut: false, exitCode: null });
    expect(outOfTime.result).toMatchObject({ cancelled: false, timedOut: true, exitCode: null });
    expect(await readdir(cwd)).toEqual([]);
  });

  it.each([
    { name: 'an empty argv', options: { argv: [] }, message: 'Expected `argv` to have at least one element, got an empty list' },
    { name: 'a negative timeout', options: { timeoutMs: -1 }, message: 'Expected the `timeoutMs` option to be a non-negative integer, got `-1`' },
    { name: 'a fractional grace period', options: { killAfterMs: 1.5 }, message: 'Expected the `killAfterMs` option to be a non-negative integer, got `1.5`' },
  ])('rejects $name as a programming error', async ({ options, message }) => {
    const promise = runCommand({ argv: ['true'], cwd: '/', env: baseEnv, output: collect(), timeoutMs: 1_000, killAfterMs: 1_000, ...options });

    await expect(promise).rejects.toThrow(DeployhookError);
    await expect(promise).rejects.toThrow(message);
  });
});
