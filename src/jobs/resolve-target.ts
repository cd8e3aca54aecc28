import { Writable } from 'node:stream';
import picomatch from 'picomatch';
import type { JobConfig } from '../config/types.js';
import { DeployhookError } from '../errors.js';
import { gitEnvironment } from '../git/git-env.js';
import { withoutUrlPasswords } from '../git/git-runner.js';
import { COMMIT_PATTERN, isValidRef } from '../providers/validate.js';
import { baseEnvironment, userEnvironment } from './command-env.js';
import { jobGitAuth } from './git-auth.js';
import { refMatcher } from './job-index.js';
import { channelOf } from '../log/mask-secrets.js';
import { runCommand } from '../runner/run-command.js';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * `git ls-remote` against the job's remote, with the job's own deploy key or token: the
 * branch HEAD names, and the commit a ref points to. In the daemon (`asJob`) git runs as the
 * job's git does: started like its other steps, as its `run_as` user with that user's
 * groups, with only PATH, LANG and that user's HOME of the daemon's environment (which holds
 * every job's secrets). From the CLI it runs as the operator.
 */
async function lsRemote(job: JobConfig, patterns: readonly string[], env: Env, asJob: boolean): Promise<string> {
  const remote = remoteOf(job);
  const lsArgs = ['ls-remote', '--symref', '--', remote, ...patterns];
  let failure: string;
  if (asJob) {
    const environment = gitEnvironment(userEnvironment(job, baseEnvironment(env)), jobGitAuth(job), remote);
    const asked = await lsRemoteAsJob(job, [...environment.configArgs, ...lsArgs], environment.env);
    if (asked.ok) return asked.stdout;
    failure = asked.failure;
  } else {
    // Loaded here, not at start: the remote is asked only when a ref or commit is not named.
    const { execa } = await import('execa');
    const operator = Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined && !entry[0].startsWith('GIT_')));
    const environment = gitEnvironment(operator, jobGitAuth(job), remote);
    const asked = await execa('git', [...environment.configArgs, ...lsArgs], { env: environment.env, extendEnv: false, timeout: LS_REMOTE_TIMEOUT_MS, reject: false });
    if (asked.exitCode === 0) return asked.stdout;
    failure = asked.timedOut ? timedOut : asked.exitCode === undefined ? (asked.shortMessage ?? 'git ls-remote could not start') : `${exited(asked.exitCode)}: ${whyGitFailed(asked.stderr)}`;
  }
  const token = job.token?.value;
  const shown = withoutUrlPasswords(token === undefined || token === '' ? failure : failure.replaceAll(token, '***'));
  throw new DeployhookError('LS_REMOTE_FAILED', `Could not read ${patterns.join(' ')} from the remote ${withoutUrlPasswords(remote)} (${shown}): can this machine reach it, with the job's key or token? Or name both the branch (--ref) and the commit (--sha), and the remote is not asked.`);
}

const LS_REMOTE_TIMEOUT_MS = 60_000;
const timedOut = `git ls-remote timed out after ${LS_REMOTE_TIMEOUT_MS / 1000} s`;
const exited = (code: number | null) => `git ls-remote exited with code ${String(code)}`;
/** The line of git's that says why (its first `fatal:` or `error:`, else its last), cut short. */
function whyGitFailed(text: string): string {
  const lines = text.split('\n').map((line) => line.trim()).filter(Boolean);
  return (lines.find((line) => /^(fatal|error): /.test(line)) ?? lines.at(-1) ?? '').slice(0, 300);
}

/** git's stdout, or why it failed. */
async function lsRemoteAsJob(job: JobConfig, args: readonly string[], env: Record<string, string>): Promise<{ ok: true; stdout: string } | { ok: false; failure: string }> {
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const output = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      (channelOf(chunk) === 'stdout' ? stdout : stderr).push(chunk);
      callback();
    },
  });
  const result = await runCommand({ argv: ['git', ...args], cwd: '/', env, output, timeoutMs: LS_REMOTE_TIMEOUT_MS, killAfterMs: 5_000, user: job.runAs });
  if (result.exitCode === 0) return { ok: true, stdout: Buffer.concat(stdout).toString('utf8').trimEnd() };
  if (result.startError !== undefined) return { ok: false, failure: `git ls-remote could not start: ${result.startError}` };
  if (result.timedOut) return { ok: false, failure: timedOut };
  const how = result.signal !== null ? `git ls-remote was killed by ${result.signal}` : exited(result.exitCode);
  return { ok: false, failure: `${how}: ${whyGitFailed(Buffer.concat(stderr).toString('utf8'))}` };
}

/** A job without a remote (a generic job that runs in its workdir) has no ref or commit to deploy. */
function remoteOf(job: JobConfig): string {
  if (job.remote !== undefined) return job.remote;
  throw new DeployhookError('NO_REMOTE', `Job ${job.name} has no remote, so there is nothing to deploy: it runs its command for each event${job.event ? ` from ${job.event.source}` : ''}. Send it one with deployhook send ${job.name} --data '<JSON>', where the job's secret can be read (README: "Generic signed events").`);
}

/** `main` -> `refs/heads/main`; full refs stay; anything git would refuse is an error. */
export function normalizeRef(ref: string): string {
  const full = ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
  if (!isValidRef(full)) throw new DeployhookError('INVALID_REF', `Expected a branch or tag ref such as refs/heads/main, got ${JSON.stringify(ref)}`);
  return full;
}

export function checkSha(sha: string): string {
  if (!COMMIT_PATTERN.test(sha)) throw new DeployhookError('INVALID_SHA', `Expected a full 40 or 64 character lowercase commit id, got ${JSON.stringify(sha)}`);
  return sha;
}

/** The one branch a job names, when it names exactly one and no glob: what it deploys when no ref is named. */
function soleBranch(job: JobConfig): string | undefined {
  const named = job.branches.filter((glob) => !glob.startsWith('!'));
  const [branch] = named;
  return named.length === 1 && branch !== undefined && !picomatch.scan(branch).isGlob && refMatcher(job.branches)(branch) ? branch : undefined;
}

/** The job's branches and tags, for a message. */
function wanted(job: JobConfig): string {
  const parts = [...(job.branches.length > 0 ? [`branches ${job.branches.join(', ')}`] : []), ...(job.tags.length > 0 ? [`tags ${job.tags.join(', ')}`] : [])];
  return parts.length > 0 ? parts.join(' and ') : 'no branch';
}

/**
 * The ref a job deploys when none is named: its one branch, else the remote's HEAD branch if
 * the job deploys it. With `labelOnly` (a rollback: the commit is named, and the ref only names
 * the deploy, as DEPLOYHOOK_REF), the remote's HEAD branch serves whatever the job's branches.
 */
async function jobRef(job: JobConfig, env: Env, asJob: boolean, labelOnly: boolean): Promise<string> {
  const sole = soleBranch(job);
  if (sole !== undefined) return normalizeRef(sole);
  const head = await lsRemote(job, ['HEAD'], env, asJob);
  const branch = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(head)?.[1];
  if (branch === undefined) throw new DeployhookError('NO_REMOTE_HEAD', `Expected the remote ${withoutUrlPasswords(remoteOf(job))} to have a HEAD branch, but it names none: name the branch (--ref <branch>).`);
  if (!labelOnly && !refMatcher(job.branches)(branch)) {
    const how = job.tags.length > 0 ? '; a tag as --ref refs/tags/<name>' : '';
    throw new DeployhookError('NO_REF', `Expected a ref to deploy: job ${job.name} deploys ${wanted(job)}, and the remote's HEAD branch ${branch} is not one of them: name the ref (--ref <branch>${how}).`);
  }
  return normalizeRef(branch);
}

/**
 * The ref and commit to deploy or send: as given, or the job's own (the one branch it names;
 * else the branch the remote's HEAD names, if the job deploys it) and the commit the ref
 * points to, asked of the remote. Never a branch the job does not deploy, unless the commit is
 * named and the ref is only its label (`refIsLabel`, a rollback): a job that follows `staging`
 * deploys `staging`, whatever the remote's default branch is. `asJob`: asked as the job's own git would ask (the daemon's deploys and events), not as
 * whoever runs the CLI (`send`).
 */
export async function resolveTarget(job: JobConfig, target: { ref?: string | undefined; sha?: string | undefined; refIsLabel?: boolean }, env: Env, asJob: boolean): Promise<{ ref: string; sha: string }> {
  const shownRemote = withoutUrlPasswords(remoteOf(job));
  const ref = target.ref !== undefined ? normalizeRef(target.ref) : await jobRef(job, env, asJob, target.refIsLabel === true && target.sha !== undefined);
  if (target.sha !== undefined) return { ref, sha: checkSha(target.sha) };
  // An annotated tag names a tag object: its commit is the peeled line (`^{}`), which is asked for too.
  const listing = await lsRemote(job, ref.startsWith('refs/tags/') ? [ref, `${ref}^{}`] : [ref], env, asJob);
  const line = (name: string) => listing.split('\n').find((entry) => entry.endsWith(`\t${name}`))?.split('\t')[0];
  const sha = line(`${ref}^{}`) ?? line(ref);
  if (sha === undefined) throw new DeployhookError('REF_NOT_FOUND', `Expected ${ref} on the remote ${shownRemote}, but it is not there: name the commit (--sha).`);
  return { ref, sha: checkSha(sha) };
}
