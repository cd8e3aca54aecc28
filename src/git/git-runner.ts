import { Writable } from 'node:stream';
import type * as SimpleGitModule from 'simple-git';
import type { SimpleGit } from 'simple-git';
import { GitSyncError, RunAbortedError } from '../errors.js';
import { printable } from '../log/printable.js';
import { runCommand } from '../runner/run-command.js';
import type { ProcessUser } from '../runner/process-launcher.js';
import { gitEnvironment, type GitAuth, type GitEnvironment } from './git-env.js';
import { shellQuote } from './shell-quote.js';

export interface GitRunnerOptions {
  /** Folder git runs in; must exist. */
  baseDir: string;
  environment: GitEnvironment;
  output: Writable;
  signal: AbortSignal;
  /** Values scrubbed from error messages and step lines, as a second line of defence. */
  secrets: readonly string[];
  /** Run git as this user and group (the daemon runs as root). */
  user?: ProcessUser | undefined;
  /** Told the process group of each `steps` process once it has started (its pid). */
  onGroup?: ((pgid: number) => void) | undefined;
}

/** One step of `steps`. */
export interface GitStep {
  label: string;
  args: readonly string[];
  /**
   * Left out, unannounced, when `.git/<ref>` in the folder is a plain file (not a link) that
   * holds one commit id of `idLength` lowercase hex characters and a newline, in a `.git` that
   * keeps its own refs as files (see LOOSE_REF_FUNCTION): git then finds `<ref>` under exactly
   * that name, which is what the step would have checked. Read by `sh` itself, so no process is
   * started for it.
   */
  unlessLooseRef?: { ref: string; idLength: number };
}

/** Runs git commands one at a time in one folder. */
export interface GitRunner {
  /**
   * A step of the sync: announced on `output` as `$ git ...`, its stdout and stderr
   * streamed there as produced. Rejects with GitSyncError naming `label`. Started like
   * `steps`, as a process group of its own, as the job's user with all of that user's groups.
   */
  step(label: string, args: readonly string[]): Promise<void>;
  /**
   * Steps run one after another in a single process (`sh` starts each git), announced and
   * streamed like `step`; the first that fails ends them and rejects with GitSyncError
   * naming its label. One process started by the daemon instead of one per step: starting a
   * process from a large one blocks its event loop for milliseconds.
   */
  steps(steps: readonly GitStep[]): Promise<void>;
  /**
   * A question for git whose answer is not shown (`cat-file -e`, `config --get`):
   * git's trimmed stdout, or undefined when git exits non-zero. Asked through node's own
   * `spawn`: as the job's user, with that user's one group (these read the checkout, which
   * the user owns).
   */
  query(args: readonly string[]): Promise<string | undefined>;
}

const STDERR_TAIL_CHARS = 2000;
/** Output kept to explain a failed step of `steps`: its own lines are found in it. */
const OUTPUT_KEPT_BYTES = 64 * 1024;
/** After SIGTERM, how long git gets before SIGKILL when a run is stopped during `steps`. */
const KILL_AFTER_MS = 5_000;
/**
 * Succeeds when `.git/$1` is a plain file, not a link, whose content is one line of exactly
 * `$2` lowercase hex characters, the refs are files (no `.git/reftable`) and `.git` keeps its
 * own (no `.git/commondir`): as git writes a ref, git then reads it from that file, under its
 * exact name. Anything else (a packed ref, a broken file, a FIFO) fails, and the step runs.
 * A file written into `.git` by other hands could fool it (dash's `read` drops NUL bytes), as
 * whoever can write there can change what git runs anyway (hooks, config).
 */
const LOOSE_REF_FUNCTION = `loose_ref() { [ ! -e .git/reftable ] && [ ! -e .git/commondir ] && [ -f ".git/$1" ] && [ ! -h ".git/$1" ] && IFS= read -r id < ".git/$1" && [ "\${#id}" -eq "$2" ] && case $id in *[!0-9a-f]*) false ;; esac; }`;
/** `steps` exits with this plus the index of the step that failed. */
const FAILED_STEP_BASE = 100;
const NO_OUTPUT = Buffer.alloc(0);

let loadingSimpleGit: Promise<typeof SimpleGitModule> | undefined;

/** simple-git is loaded with the first git that runs, not when the daemon starts. */
function loadSimpleGit(): Promise<typeof SimpleGitModule> {
  return (loadingSimpleGit ??= import('simple-git'));
}

/** What git needs to work in a job's checkout: the remote's credentials scoped to that remote. */
export interface CheckoutGitOptions {
  checkout: string;
  remote: string;
  auth: GitAuth;
  /** Base environment for git (PATH, HOME, LANG, a proxy); nothing else is inherited. */
  env: Record<string, string>;
  output: Writable;
  signal: AbortSignal;
  user?: ProcessUser | undefined;
  /** Told the process group git's steps run in, so that a restart after a crash can stop what is left of it. */
  onGroup?: ((pgid: number) => void) | undefined;
}

/** A runner in a job's checkout, with the remote's credentials and its password scrubbed from messages. */
export function checkoutGitRunner(options: CheckoutGitOptions): GitRunner {
  return createGitRunner({
    baseDir: options.checkout,
    environment: gitEnvironment(options.env, options.auth, options.remote),
    output: options.output,
    signal: options.signal,
    secrets: options.auth.password === undefined ? [] : [options.auth.password],
    user: options.user,
    onGroup: options.onGroup,
  });
}

export function createGitRunner(options: GitRunnerOptions): GitRunner {
  const { output, signal, secrets } = options;
  let client: Promise<SimpleGit> | undefined;
  const git = (): Promise<SimpleGit> => (client ??= loadSimpleGit().then(configure));

  function configure({ simpleGit }: typeof SimpleGitModule): SimpleGit {
    return simpleGit({
      baseDir: options.baseDir,
      ...(options.user ? { spawnOptions: { uid: options.user.uid, gid: options.user.gid } } : {}),
      // On abort simple-git sends SIGINT to git itself; it can neither start git in a
      // process group of its own nor tell us its pid, so a child git leaves behind (ssh,
      // git-remote-http) ends on its own limits: see ssh-command.ts and git-env.ts.
      abort: signal,
      unsafe: options.environment.unsafe,
      allowEnvironment: options.environment.allowEnvironment,
      // simple-git only treats a non-zero exit as a failure when stderr is not empty;
      // every non-zero exit is a failure here.
      errors: (error, result) => error ?? (result.exitCode === 0 ? undefined : failureText(result.stdErr, result.exitCode)),
    })
      .env(options.environment.env)
      .outputHandler((_command, stdout) => {
        // simple-git reports the end of a git that printed nothing only 50 ms later, in case
        // output is late (its completion plugin); no output can follow the end of stdout, so
        // an empty chunk then lets it report at once. A quiet step (`clean` with nothing to
        // remove, `cat-file -e`) costs what git costs.
        stdout.once('end', () => stdout.emit('data', NO_OUTPUT));
      });
  }

  function scrub(text: string): string {
    return secrets.reduce((result, secret) => (secret === '' ? result : result.replaceAll(secret, '***')), text);
  }

  async function ask(args: readonly string[]): Promise<string> {
    throwIfAborted(signal);
    try {
      // Queries stay in the checkout (no remote is asked): no settings for credentials.
      return await (await git()).raw([...args]);
    } catch (error) {
      throwIfAborted(signal, error);
      throw error;
    }
  }

  /**
   * The script names only positional parameters: `$1` is step 1's `$ git ...` line, then its
   * arguments, and so on. No argument is ever read as shell code.
   */
  async function runSteps(given: readonly GitStep[]): Promise<void> {
    throwIfAborted(signal);
    const { configArgs } = options.environment;
    const steps = configArgs.length === 0 ? given : given.map((step) => ({ ...step, args: [...configArgs, ...step.args] }));
    const shown = steps.map(({ args }) => `$ ${printable(scrub(commandLine(args)))}`);
    const params: string[] = [];
    // One stream: git's stdout and stderr reach the log in the order git wrote them, and are
    // masked as one stream (a secret split across the two would not be; a token reaches git
    // through the askpass helper, not through its arguments).
    const lines = ['exec 2>&1'];
    if (steps.some((step) => step.unlessLooseRef !== undefined)) lines.push(LOOSE_REF_FUNCTION);
    steps.forEach(({ args, unlessLooseRef }, index) => {
      params.push(shown[index] ?? '');
      const at = params.length;
      params.push(...args);
      const words = args.map((_, i) => `"\${${at + 1 + i}}"`).join(' ');
      const line = `printf '%s\\n' "\${${at}}"; git ${words} || { printf 'git exited with code %s\\n' "$?"; exit ${FAILED_STEP_BASE + index}; }`;
      if (unlessLooseRef === undefined) {
        lines.push(line);
        return;
      }
      params.push(unlessLooseRef.ref, String(unlessLooseRef.idLength));
      lines.push(`if ! loose_ref "\${${params.length - 1}}" "\${${params.length}}"; then ${line}; fi`);
    });
    // Output goes to the log as it comes; the end of it is kept to explain a failure.
    let kept = Buffer.alloc(0);
    const tee = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output.write(chunk);
        kept = Buffer.concat([kept, chunk]);
        if (kept.length > OUTPUT_KEPT_BYTES) kept = kept.subarray(kept.length - OUTPUT_KEPT_BYTES);
        callback();
      },
    });
    // The same process handling as a run's command: its own group, stopped whole on abort and
    // at the daemon's exit, leftovers stopped. The run's timeout arrives through `signal`.
    const result = await runCommand({
      argv: ['/bin/sh', '-c', lines.join('\n'), 'git-steps', ...params],
      cwd: options.baseDir,
      env: options.environment.env,
      output: tee,
      timeoutMs: Number.MAX_SAFE_INTEGER,
      killAfterMs: KILL_AFTER_MS,
      signal,
      user: options.user,
      sessionLeftovers: false,
      ...(options.onGroup ? { onStart: options.onGroup } : {}),
    });
    throwIfAborted(signal);
    // A failure that is not one step's (git never started, or sh was stopped) names the step when there is only one.
    const only = steps.length === 1 && steps[0] !== undefined ? { step: steps[0].label } : {};
    if (result.startError !== undefined) throw new GitSyncError(`Could not start git in ${options.baseDir}: ${result.startError}`, only);
    if (result.lost !== undefined) throw new GitSyncError(`Lost track of git in ${options.baseDir} (${result.lost}); its processes were stopped`, only);
    const { exitCode: code, signal: exitSignal } = result;
    if (code === 0) return;
    const index = code === null ? -1 : code - FAILED_STEP_BASE;
    const failed = steps[index];
    const text = kept.toString('utf8');
    if (failed === undefined) {
      throw new GitSyncError(`Git step${steps.length === 1 ? '' : 's'} ${steps.map(({ label }) => `"${label}"`).join(', ')} failed (${exitSignal ? `killed by ${exitSignal}` : `sh exited with code ${String(code)}`}):\n${tail(scrub(text))}`, only);
    }
    // What the failed step printed: everything after its own `$ git ...` line, ending with git's exit code.
    const line = `${shown[index] ?? ''}\n`;
    const own = text.includes(line) ? text.slice(text.lastIndexOf(line) + line.length) : text;
    throw new GitSyncError(`Git step "${failed.label}" failed (git ${subcommand(failed.args)}):\n${tail(scrub(own))}`, { step: failed.label });
  }

  return {
    steps: runSteps,
    step: (label, args) => runSteps([{ label, args }]),
    async query(args) {
      try {
        return (await ask(args)).trim();
      } catch (error) {
        if (error instanceof RunAbortedError) throw error;
        return undefined;
      }
    },
  };
}

/** RunAbortedError with the signal's reason (`timeout` or `cancelled`) once `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal, cause?: unknown): void {
  if (!signal.aborted) return;
  const reason: unknown = signal.reason;
  throw new RunAbortedError(reason === 'timeout' ? 'timeout' : 'cancelled', { cause: cause ?? reason });
}

function failureText(stderr: Buffer[], exitCode: number): Buffer {
  const text = Buffer.concat(stderr);
  return text.length > 0 ? text : Buffer.from(`git exited with code ${exitCode}`);
}

function tail(text: string): string {
  const trimmed = text.trim();
  return trimmed.length <= STDERR_TAIL_CHARS ? trimmed : `...${trimmed.slice(-STDERR_TAIL_CHARS)}`;
}

/** git's command in `args`, after any `-c name=value` settings. */
function subcommand(args: readonly string[]): string {
  let index = 0;
  while (args[index] === '-c') index += 2;
  return args[index] ?? '';
}

/** `git clone --no-checkout -- https://user:pw@host/x` is shown with the password replaced: `https://user:***@host/x`. */
function commandLine(args: readonly string[]): string {
  return ['git', ...args].map((arg) => shellQuote(withoutUrlPasswords(arg))).join(' ');
}

/** `text` with the password of every `scheme://user:password@` URL in it shown as `***`. */
export function withoutUrlPasswords(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/gi, '$1:***@');
}
