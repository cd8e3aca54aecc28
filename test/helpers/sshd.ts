import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach } from 'vitest';
import { freePort } from './ports.js';

const execFileAsync = promisify(execFile);

export const SSHD = '/usr/sbin/sshd';

/** A real OpenSSH server on loopback that accepts one deploy key. */
export interface TestSshd {
  port: number;
  /** The login user: the user running the tests. */
  user: string;
  /** Private key listed in the server's authorized_keys. */
  deployKey: string;
  /** known_hosts holding the server's real host key for `[127.0.0.1]:port`. */
  knownHosts: string;
  /** `ssh://user@127.0.0.1:port/<path>` for an absolute path on this machine. */
  url(path: string): string;
}

/** Writes a new ed25519 key pair at `path` and `path.pub`; returns the public key line. */
export async function generateKey(path: string): Promise<string> {
  await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'deployhook-test', '-f', path]);
  return (await readFile(`${path}.pub`, 'utf8')).trim();
}

/**
 * Starts sshd for the current test and stops it afterwards. Key paths live in a folder
 * whose name has a space, a quote and a `%`, so they must be quoted for sh and for ssh alike.
 */
export async function startSshd(): Promise<TestSshd> {
  if (!existsSync(SSHD)) {
    throw new Error(`Expected an OpenSSH server at ${SSHD} for the SSH tests, found none. Install it with: apt-get install openssh-server`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'deployhook-sshd-'));
  const clientDir = join(dir, "deploy key's %h");
  await mkdir(clientDir);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // The privilege separation folder Debian's sshd insists on.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 }).catch(() => undefined);

  const hostKey = await generateKey(join(dir, 'host_key'));
  const deployKey = join(clientDir, 'id_deploy');
  await writeFile(join(dir, 'authorized_keys'), `${await generateKey(deployKey)}\n`);
  const user = userInfo().username;

  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    await writeFile(join(dir, 'sshd_config'), sshdConfig(dir, port));
    const started = await runSshd(join(dir, 'sshd_config'), port);
    if (started.ok) {
      cleanups.unshift(() => stop(started.child));
      const knownHosts = join(clientDir, 'known_hosts');
      await writeFile(knownHosts, `[127.0.0.1]:${port} ${hostKey}\n`);
      return { port, user, deployKey, knownHosts, url: (path) => `ssh://${user}@127.0.0.1:${port}${path}` };
    }
    if (!started.log.includes('Address already in use') || attempt === 5) {
      throw new Error(`sshd did not start on port ${port}:\n${started.log}`);
    }
  }
}

function sshdConfig(dir: string, port: number): string {
  return [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${join(dir, 'host_key')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'StrictModes no',
    'UsePAM no',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

type Started = { ok: true; child: ChildProcess } | { ok: false; log: string };

async function runSshd(config: string, port: number): Promise<Started> {
  const child = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString('utf8')));
  const exited = new Promise<Started>((resolve) => child.on('exit', () => resolve({ ok: false, log })));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const outcome = await Promise.race([exited, accepts(port).then((ok) => (ok ? { ok: true as const, child } : undefined))]);
    if (outcome !== undefined) return outcome;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop(child);
  return { ok: false, log: `${log}\n(no connection accepted within 10 s)` };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const cleanups: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});
