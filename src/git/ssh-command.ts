import { shellQuote } from './shell-quote.js';

/**
 * The `GIT_SSH_COMMAND` git uses for SSH remotes. git runs it through `sh`, so every
 * argument is shell-quoted; ssh then reads `-o` values as config lines (split on
 * whitespace, `%` tokens expanded), so paths given there are quoted for ssh as well.
 * The key goes in as `-o IdentityFile=` rather than `-i`: ssh checks an `-i` path
 * before expanding `%` tokens and uses it after, so no spelling of a path with `%`
 * survives both.
 */
export interface SshCommandOptions {
  /** Absolute path of the private deploy key. */
  sshKey?: string | undefined;
  /** Absolute path of a known_hosts file; ssh's default files when absent. */
  knownHosts?: string | undefined;
}

/**
 * Never prompts (BatchMode) and never accepts a host key it does not already know
 * (StrictHostKeyChecking=yes), whatever the operator's ~/.ssh/config says.
 *
 * ssh also gives up on its own on a host that stops answering: ConnectTimeout covers
 * the TCP connect and the banner exchange, ServerAlive a connection that goes silent.
 * That matters after an abort too: git does not kill the ssh it started when it is
 * killed, so a stuck ssh outlives it until these limits end it.
 */
export function sshCommand(options: SshCommandOptions): string {
  const args = ['ssh'];
  if (options.sshKey !== undefined) {
    args.push('-o', `IdentityFile=${sshConfigValue(options.sshKey)}`, '-o', 'IdentitiesOnly=yes');
  }
  args.push('-o', 'BatchMode=yes', '-o', 'ConnectTimeout=30', '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=4');
  if (options.knownHosts !== undefined) {
    args.push('-o', `UserKnownHostsFile=${sshConfigValue(options.knownHosts)}`);
  }
  args.push('-o', 'StrictHostKeyChecking=yes');
  return args.map(shellQuote).join(' ');
}

/**
 * A path as one ssh config value: double-quoted, and with `%` doubled because ssh
 * expands `%h`, `%u` and friends in key and known_hosts paths.
 */
function sshConfigValue(path: string): string {
  return `"${path.replaceAll('%', '%%').replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}
