import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { groupAlive } from '../../src/runner/kill-group.js';
import { ProcessLauncher } from '../../src/runner/process-launcher.js';
import { runCommand, type CommandOptions } from '../../src/runner/run-command.js';
import { alteredPerl, baseEnv, collect, statFields } from '../helpers/processes.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

async function run(argv: readonly string[], overrides: Partial<CommandOptions> = {}) {
  const output = collect();
  const result = await runCommand({ argv, cwd: await tempDir(), env: baseEnv, output, timeoutMs: 10_000, killAfterMs: 1_000, ...overrides });
  return { result, text: output.text() };
}

/** The parent of a process and that parent's command line, from /proc. */
function parentOf(pid: number): { ppid: number; command: string } {
  const ppid = Number(statFields(pid)?.[1]);
  return { ppid, command: readFileSync(`/proc/${ppid}/cmdline`, 'latin1').split('\0')[0] ?? '' };
}

describe('the process launcher', () => {
  it("starts a command from its perl helper, not by forking the daemon, in a group of the command's own", async () => {
    const launcher = new ProcessLauncher();
    const { result, text } = await run(['sh', '-c', 'echo "$$ $PPID $(cut -d " " -f 5 /proc/$$/stat)"'], { launcher });
    const [pid, ppid, pgid] = text.trim().split(/\s+/).map(Number);

    expect(result).toMatchObject({ exitCode: 0, signal: null });
    expect(pgid).toBe(pid);
    expect(ppid).not.toBe(process.pid);
    expect(readFileSync(`/proc/${String(ppid)}/cmdline`, 'latin1').split('\0')[0]).toBe('deployhook process helper');
    expect(parentOf(ppid as number).ppid).toBe(process.pid);
  });

  it('reports exit codes, signals and start errors as node would', async () => {
    const launcher = new ProcessLauncher();
    expect((await run(['sh', '-c', 'exit 7'], { launcher })).result).toMatchObject({ exitCode: 7, signal: null });
    expect((await run(['sh', '-c', 'kill -TERM $$'], { launcher })).result).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    // Named as node names it, not by an alias of the same number (SIGIOT).
    expect((await run(['sh', '-c', 'ulimit -c 0; kill -ABRT $$'], { launcher })).result).toMatchObject({ exitCode: null, signal: 'SIGABRT' });
    // A real-time signal, which node has no name for, is named as `kill -l` names it.
    expect((await run(['bash', '-c', 'kill -RTMIN+3 $$'], { launcher })).result).toMatchObject({ exitCode: null, signal: 'SIGRTMIN+3' });
    // The signals the helper ignores are at their defaults in what it starts.
    for (const name of ['INT', 'TERM', 'HUP', 'QUIT', 'PIPE']) {
      const { result, text } = await run(['sh', '-c', `kill -${name} $$; echo survived`], { launcher });
      expect({ signal: result.signal, text }).toEqual({ signal: `SIG${name}`, text: '' });
    }
    expect((await run(['no-such-program-here'], { launcher })).result.startError).toBe('command not found: no-such-program-here');
    const notExecutable = join(await tempDir(), 'deploy.sh');
    writeFileSync(notExecutable, '#!/bin/sh\necho never\n', { mode: 0o644 });
    expect((await run([notExecutable], { launcher })).result.startError).toBe(`permission denied: ${notExecutable} (is it executable?)`);
    expect((await run(['true'], { launcher, cwd: '/nonexistent/folder' })).result.startError).toBe('working folder not found: /nonexistent/folder');
    expect(launcher.unavailable).toBeUndefined();
  });

  it('when its helper is killed while a command runs: the run is told the end is lost, the group is stopped, and the next command gets a new helper', async () => {
    const launcher = new ProcessLauncher();
    const told: string[] = [];
    launcher.onProblem = (reason) => told.push(reason);
    const output = collect();
    let group: number | undefined;
    const running = runCommand({ argv: ['sh', '-c', 'echo started; sleep 30 & wait'], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 20_000, killAfterMs: 1_000, launcher, onStart: (pgid) => (group = pgid) });
    await until('the command to start', () => output.text().includes('started'));
    const helper = parentOf(group as number);
    expect(helper.command).toBe('deployhook process helper');
    process.kill(helper.ppid, 'SIGKILL');

    const result = await running;
    expect(result.lost).toMatch(/the process helper \(perl\) ended \(SIGKILL\)/);
    expect(result).toMatchObject({ exitCode: null, signal: null, timedOut: false, cancelled: false, leftovers: false });
    expect(await groupAlive(group as number)).toBe(false);
    expect(told).toEqual([result.lost]);

    const { result: next, text } = await run(['sh', '-c', 'echo $PPID; cat /proc/$PPID/cmdline | tr "\\0" " "'], { launcher });
    expect(next).toMatchObject({ exitCode: 0 });
    const [newHelper = '', commandLine = ''] = text.trim().split('\n');
    expect(Number(newHelper)).not.toBe(helper.ppid);
    expect(commandLine).toBe('deployhook process helper');
  });

  it('keeps its helper through the signals that stop a daemon, which a Ctrl-C sends to its whole process group', async () => {
    const launcher = new ProcessLauncher();
    const output = collect();
    let group: number | undefined;
    const running = runCommand({ argv: ['sh', '-c', 'echo started; sleep 0.5; exit 3'], cwd: await tempDir(), env: baseEnv, output, timeoutMs: 20_000, killAfterMs: 1_000, launcher, onStart: (pgid) => (group = pgid) });
    await until('the command to start', () => output.text().includes('started'));
    const helper = parentOf(group as number).ppid;
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) process.kill(helper, signal);

    const result = await running;
    expect(result).toMatchObject({ exitCode: 3, signal: null });
    expect(result.lost).toBeUndefined();
    // The same helper starts the next command.
    expect(Number((await run(['sh', '-c', 'echo $PPID'], { launcher })).text.trim())).toBe(helper);
  });

  it('starts a command with no signal blocked or ignored, though the helper blocks those that stop a daemon', async () => {
    const launcher = new ProcessLauncher();
    const { result, text } = await run(['grep', '-E', '^Sig(Blk|Ign):', '/proc/self/status'], { launcher });
    expect(result).toMatchObject({ exitCode: 0 });
    expect(text.trim().split('\n')).toEqual(['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
    // Started by the helper, whose own mask is not empty.
    const helper = Number((await run(['sh', '-c', 'echo $PPID'], { launcher })).text.trim());
    expect(readFileSync(`/proc/${String(helper)}/status`, 'latin1')).toMatch(/^SigBlk:\t0*[1-9a-f][0-9a-f]*$/m);
  });

  it('when its helper ends after its `forked` line but before `started`, stops what it forked and fails the start', async () => {
    const launcher = new ProcessLauncher({ perl: await alteredPerl('answer("started $id $pid\\n");', 'kill(9, $$);') });
    const cwd = await tempDir();
    const { result } = await run(['sh', '-c', 'sleep 1; touch made-it'], { launcher, cwd });
    expect(result.startError).toMatch(/the process helper \(.*\) ended \(SIGKILL\) while starting it; what it had started was stopped$/);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(existsSync(join(cwd, 'made-it'))).toBe(false);
  });

  it('when its helper ends after forking a command but before its `forked` line, the command is never run', async () => {
    // The helper dies right after its fork; its child looks only once that has surely happened.
    const launcher = new ProcessLauncher({ perl: await alteredPerl('answer("forked $id $pid\\n");', 'kill(9, $$);', ['if (getppid()', 'select(undef, undef, undef, 0.3); if (getppid()']) });
    const cwd = await tempDir();
    const { result } = await run(['sh', '-c', 'touch made-it'], { launcher, cwd });
    expect(result.startError).toMatch(/the process helper \(.*\) ended \(SIGKILL\) while starting it$/);
    // Long enough for a child that went on to run the command, even on a busy host.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(existsSync(join(cwd, 'made-it'))).toBe(false);
  });

  it('learns of an exit even when the wake-up for it is missed, as one just before the helper waits can be', async () => {
    // No handler at all: every exit is found by the helper's periodic look.
    const launcher = new ProcessLauncher({ perl: await alteredPerl("$SIG{CHLD} = sub { syswrite($wake_out, 'x') };", '') });
    const { result, text } = await run(['sh', '-c', 'echo $PPID; exit 4'], { launcher });
    expect(result.exitCode).toBe(4);
    expect(Number(text.trim())).not.toBe(process.pid);
    expect(launcher.unavailable).toBeUndefined();
  });

  it('starts a command with node itself when the helper cannot fork at the moment, and keeps the helper', async () => {
    const launcher = new ProcessLauncher({ perl: await alteredPerl('my $pid = fork();', 'my $pid; $! = POSIX::EAGAIN();') });
    const { result, text } = await run(['sh', '-c', 'echo $PPID'], { launcher });
    expect(result).toMatchObject({ exitCode: 0 });
    expect(Number(text.trim())).toBe(process.pid);
    expect(launcher.unavailable).toBeUndefined();
  });

  it('where perl cannot be started, commands are started by node itself, and the problem is told once', async () => {
    const launcher = new ProcessLauncher({ perl: '/nonexistent/perl' });
    const told: string[] = [];
    launcher.onProblem = (reason) => told.push(reason);
    for (let i = 0; i < 2; i++) {
      const { result, text } = await run(['sh', '-c', 'echo $PPID'], { launcher });
      expect(result).toMatchObject({ exitCode: 0 });
      expect(Number(text.trim())).toBe(process.pid);
    }
    expect(told).toEqual(['could not start /nonexistent/perl: not found']);
    expect(launcher.unavailable).toBe(told[0]);
  });

  // Switching users needs root, as deployhook itself does; CI runs as root, so there it must not skip.
  it.skipIf(process.getuid?.() !== 0 && !process.env.CI)("gives a run_as command all of the user's groups, and node's spawn, where the helper cannot run, the one group", async () => {
    expect(process.getuid?.(), 'this test needs root').toBe(0);
    const ids = ['sh', '-c', 'echo "$(id -u) $(id -g) groups $(id -G)"'];
    const user = { uid: 65534, gid: 65534, groups: [65534, 4, 27] };
    const helped = await run(ids, { launcher: new ProcessLauncher(), cwd: '/', user });
    expect(helped.result).toMatchObject({ exitCode: 0 });
    expect(helped.text.trim()).toBe('65534 65534 groups 65534 4 27');
    // Without a list, the group alone: the helper never keeps the daemon's groups (root's).
    const alone = await run(ids, { launcher: new ProcessLauncher(), cwd: '/', user: { uid: 65534, gid: 65534 } });
    expect(alone.text.trim()).toBe('65534 65534 groups 65534');
    const spawned = await run(ids, { launcher: null, cwd: '/', user });
    expect(spawned.text.trim()).toBe('65534 65534 groups 65534');
    // Groups the helper could not set (here: it sets the one group instead) stop the start.
    const oneGroup = new ProcessLauncher({ perl: await alteredPerl('$) = "$group @groups";', '$) = "$group $group";') });
    const refused = await run(ids, { launcher: oneGroup, cwd: '/', user });
    expect(refused.result).toMatchObject({ exitCode: null, startError: "could not take on all of its user's groups: EPERM" });
    expect(refused.text).not.toContain('65534 65534');
  });

  it.skipIf(process.getuid?.() !== 0 && !process.env.CI)("enters a run_as command's folder as the user, so a folder only root could enter is refused", async () => {
    expect(process.getuid?.(), 'this test needs root').toBe(0);
    const parent = await tempDir();
    const closed = join(parent, 'closed');
    mkdirSync(join(closed, 'inner'), { recursive: true });
    chmodSync(closed, 0o700);
    chmodSync(parent, 0o755);
    const user = { uid: 65534, gid: 65534, groups: [65534] };
    const refused = await run(['sh', '-c', 'pwd'], { launcher: new ProcessLauncher(), cwd: join(closed, 'inner'), user });
    expect(refused.result).toMatchObject({ exitCode: null, startError: `could not enter the working folder ${join(closed, 'inner')}: EACCES` });
    expect(refused.text.split('\n')).not.toContain(join(closed, 'inner'));
    const entered = await run(['sh', '-c', 'pwd'], { launcher: new ProcessLauncher(), cwd: parent, user });
    expect(entered.text.trim()).toBe(parent);
  });
});
