import type { Cidr } from './cidr.js';
import type { ListenAddress } from './listen-address.js';
import type { RunAs } from './system-users.js';

export const PROVIDER_NAMES = ['github', 'gitlab', 'gitea', 'forgejo'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** A job after loading: paths absolute, secrets read, durations in milliseconds. */
export interface JobConfig {
  name: string;
  provider: ProviderName;
  /** The repository as written in the config. */
  repo: string;
  /** Lowercased `repo`, the key deliveries are matched on. */
  repoKey: string;
  /** Branch globs (empty: no branch deploys). */
  branches: readonly string[];
  /** Tag globs (empty: no tag deploys). */
  tags: readonly string[];
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
  /** The user (and group) git and the command run as; the daemon must be root for this. */
  runAs?: RunAs;
  /** The file the job was defined in, for messages. */
  source: string;
}

export interface TlsFiles {
  cert: string;
  key: string;
  /** Mutual TLS: clients must present a certificate signed by this CA. */
  clientCa?: string;
}

export interface Config {
  file: string;
  listen: ListenAddress;
  tls?: TlsFiles;
  /** Per provider, the networks deliveries may come from (none listed: anywhere). */
  allowFrom: Partial<Record<ProviderName, readonly Cidr[]>>;
  /** Reverse proxies whose X-Forwarded-For is believed. */
  trustProxy: readonly Cidr[];
  /** The operator API: absent means off. Tokens are secrets. */
  api?: { token: string; uiToken?: string; url?: string };
  /** A head commit message containing this queues nothing. */
  skipMarker: string;
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
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
