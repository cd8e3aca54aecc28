import type { JobConfig } from '../config/types.js';
import type { GitAuth } from '../git/git-env.js';

/** The credentials git uses for a job's remote: its deploy key and known_hosts, or its token. */
export function jobGitAuth(job: JobConfig): GitAuth {
  return {
    ...(job.sshKey !== undefined ? { sshKey: job.sshKey } : {}),
    ...(job.knownHosts !== undefined ? { knownHosts: job.knownHosts } : {}),
    ...(job.token !== undefined ? { username: job.token.user, password: job.token.value } : {}),
  };
}
