import { join } from 'node:path';
import { packageRoot } from '../package-root.js';
import { sshCommand } from './ssh-command.js';

/** Credentials for the remote, all from config. */
export interface GitAuth {
  /** Absolute path of a private deploy key (SSH remotes). */
  sshKey?: string;
  /** Absolute path of a known_hosts file; when given, host keys are checked strictly against it. */
  knownHosts?: string;
  /** HTTPS basic-auth user for a token. */
  username?: string;
  /** HTTPS token value. Secret: it travels only in the askpass helper's environment. */
  password?: string;
}

/** The environment for git and exactly the simple-git opt-ins that environment needs. */
export interface GitEnvironment {
  env: Record<string, string>;
  /** Guarded variables (GIT_* and friends) simple-git must let through. */
  allowEnvironment: string[];
  unsafe: { allowUnsafeSshCommand: true; allowUnsafeAskPass?: true };
  /**
   * Settings put before every git step and `ls-remote` (`-c name=value`; git hands them on to
   * the gits it starts, a submodule's fetch included). With a token: no credential helper for
   * the remote's origin. git offers the credentials the askpass helper gave to every helper of
   * the system's and the user's config once they worked, and `helper = store` would write the
   * token to ~/.git-credentials in plain text; a helper would also be asked before the askpass
   * helper, for a credential of its own. Other hosts (a submodule's) keep their helpers.
   */
  configArgs: readonly string[];
}

/** The helper in the package's `libexec/`. */
export const ASKPASS_SCRIPT = join(packageRoot(import.meta.url), 'libexec', 'git-askpass.sh');

/**
 * `scheme://host[:port]` of a URL remote, as git shows it in a credential prompt; the
 * askpass helper answers only prompts for this origin. Empty for a non-URL remote.
 */
export function originOf(remote: string): string {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(?:[^@/]*@)?([^/?#]+)/i.exec(remote);
  return match ? `${(match[1] ?? '').toLowerCase()}://${match[2] ?? ''}` : '';
}

/**
 * `base` (PATH, HOME, LANG and a proxy, chosen by the caller) plus what keeps git from ever
 * waiting on a person: no terminal prompts, ssh in batch mode with strict host keys,
 * and the token answered by the askpass helper, for the remote's own host only.
 *
 * GIT_SSH_COMMAND is set for every remote, not only when a key is configured, so an
 * SSH remote can neither prompt on a terminal nor trust a host it has not seen.
 *
 * An HTTP transfer that moves nothing for a minute is given up. Without that, a server
 * that accepts and never answers keeps git waiting until the run's timeout, and keeps
 * git-remote-http waiting forever: git does not kill that helper when it is killed.
 */
export function gitEnvironment(base: Record<string, string>, auth: GitAuth, remote: string): GitEnvironment {
  const env: Record<string, string> = {
    ...base,
    GIT_TERMINAL_PROMPT: '0',
    GIT_HTTP_LOW_SPEED_LIMIT: '1',
    GIT_HTTP_LOW_SPEED_TIME: '60',
    GIT_SSH_COMMAND: sshCommand({ sshKey: auth.sshKey, knownHosts: auth.knownHosts }),
  };
  const allowEnvironment = ['GIT_TERMINAL_PROMPT', 'GIT_HTTP_LOW_SPEED_LIMIT', 'GIT_HTTP_LOW_SPEED_TIME', 'GIT_SSH_COMMAND'];
  if (auth.password === undefined) {
    return { env, allowEnvironment, unsafe: { allowUnsafeSshCommand: true }, configArgs: [] };
  }
  env['GIT_ASKPASS'] = ASKPASS_SCRIPT;
  env['DEPLOYHOOK_GIT_ORIGIN'] = originOf(remote);
  env['DEPLOYHOOK_GIT_USERNAME'] = auth.username ?? '';
  env['DEPLOYHOOK_GIT_PASSWORD'] = auth.password;
  allowEnvironment.push('GIT_ASKPASS');
  // A host git may fail to match a URL setting to (`_`, `~` or a `%` escape in it) gets no helper at all.
  const origin = originOf(remote);
  const plain = /^[a-z][a-z0-9+.-]*:\/\/(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d+)?$/i.test(origin);
  return { env, allowEnvironment, unsafe: { allowUnsafeSshCommand: true, allowUnsafeAskPass: true }, configArgs: ['-c', plain ? `credential.${origin}.helper=` : 'credential.helper='] };
}
