import type { ListenAddress } from './listen-address.js';

export type ProviderName = 'github' | 'gitlab';

/** A job after loading: paths absolute, secrets read, durations in milliseconds. */
export interface JobConfig {
  name: string;
  provider: ProviderName;
  /** The repository as written in the config. */
  repo: string;
  /** Lowercased `repo`, the key deliveries are matched on. */
  repoKey: string;
  branches: readonly string[];
  /** Webhook secrets; a delivery must verify against one of them. Never logged. */
  secrets: readonly string[];
  remote: string;
  checkout: string;
  command: readonly string[];
  /** Relative folder inside the checkout, already checked not to leave it. */
  workdir?: string;
  env: Readonly<Record<string, string>>;
  timeoutMs: number;
  killGraceMs: number;
  sshKey?: string;
  knownHosts?: string;
  /** HTTPS credentials for the remote. `value` is a secret. */
  token?: { user: string; value: string };
  submodules: boolean;
  /** The file the job was defined in, for messages. */
  source: string;
}

export interface Config {
  file: string;
  listen: ListenAddress;
  stateDir: string;
  logDir: string;
  maxParallel: number;
  maxBodyBytes: number;
  /** Command output kept per run log: the beginning and the end. */
  maxLogBytes: number;
  /** Finished runs kept per job. */
  keepRuns: number;
  /** How long a shutdown waits for running commands before stopping them. */
  shutdownTimeoutMs: number;
  /** How long delivery ids are remembered to recognise redeliveries. */
  dedupWindowMs: number;
  jobs: readonly JobConfig[];
  /** Things that load but deserve attention (`deployhook check` prints them). */
  warnings: readonly string[];
}
