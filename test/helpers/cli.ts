import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { execa } from 'execa';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`dist/cli.js`, as installed by `npm ci`) to completion. */
export async function runCli(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
  const result = await execa('node', [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? {}, reject: false, timeout: 60_000 });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

export interface ServeProcess {
  port: number;
  process: ChildProcess;
  /** Every JSON log line so far. */
  lines: Array<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number | undefined>;
}

/** Starts `deployhook serve` as a real process and waits for its "listening" line. */
export async function startServe(args: string[], options: { cwd?: string; env?: Record<string, string>; before?: string } = {}): Promise<ServeProcess> {
  // `before`: shell text run first, in the shell that then becomes the daemon (`exec 3>>lock`, as a wrapper script would; bash, for descriptors above 9).
  const [file, argv] = options.before === undefined ? ['node', [CLI, 'serve', ...args]] : ['bash', ['-c', `${options.before}\nexec node "$0" serve "$@"`, CLI, ...args]];
  const child = execa(file, argv, { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? {}, reject: false, buffer: false });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let pending = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      for (const part of parts) {
        try {
          const line = JSON.parse(part) as Record<string, unknown>;
          lines.push(line);
          if (line.msg === 'listening') resolve(line.port as number);
        } catch {
          // not a log line
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`deployhook serve exited with ${code} before listening: ${stderr}`)));
  });
  return {
    port,
    process: child,
    lines,
    async stop(signal = 'SIGTERM') {
      child.kill(signal);
      const result = await child;
      return result.exitCode;
    },
  };
}
