import type { Cidr } from './cidr.js';
import type { ListenAddress } from './listen-address.js';
import type { RunAs } from './system-users.js';

export const PROVIDER_NAMES = ['github', 'gitlab', 'gitea', 'forgejo', 'bitbucket', 'bitbucket-server', 'generic'] as const;
export type ProviderName = (typeof PROVIDER_NAMES)[number];

/** A job after loading: paths absolute, secrets read, durations in milliseconds. */
export interface JobConfig {
  name: string;
  provider: ProviderName;
  /** The repository as written in the config (empty for a generic job, which has a `source`). */
  repo: string;
  /** Lowercased `repo` (generic: the lowercased event source), the key deliveries are matched on. */
  repoKey: string;
  /** Branch globs (empty: no branch deploys). */
  branches: readonly string[];
  /** Tag globs (empty: no tag deploys). */
  tags: readonly string[];
  /** File globs (`!` excludes): a push deploys only when a changed file matches. Absent: every push deploys. */
  paths?: readonly string[];
  /** Webhook secrets; a delivery must verify against one of them. Never logged. */
  secrets: readonly string[];
  /** GitLab signing tokens (`whsec_...`): set instead of `secrets`, deliveries must carry a Standard Webhooks signature. Never logged. */
  signingTokens?: readonly string[];
  /** Absent only for a generic job that runs in its workdir without git. */
  remote?: string;
  /** The working copy; for a job without a remote, the folder the command runs in (git never touches it). */
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
  /** Fan-out destinations for the deliveries that queue a run of this job. */
  forward: readonly ForwardTarget[];
  /** Generic signed events: which events run the job, and what of them the command sees. */
  event?: EventSpec;
  /** The file the job was defined in, for messages. */
  source: string;
}

/** A value `when` compares with: payload values are equal to it only with the same type. */
export type EventValue = string | number | boolean;

/** How a generic job takes events. */
export interface EventSpec {
  /** `POST /hooks/generic/<source>`. */
  source: string;
  /** Dotted payload paths and the values accepted there (any of them); every condition must hold. */
  when: ReadonlyArray<{ path: string; values: readonly EventValue[] }>;
  /** Environment variable names and the dotted payload paths their values come from. */
  fields: Readonly<Record<string, string>>;
}

/** A fan-out destination after loading. */
export interface ForwardTarget {
  /** Where relays go, without the user and password the config's URL may name (fetch refuses those). */
  url: string;
  /** `Basic …` from the config URL's user and password, sent as Authorization. Never logged. */
  authorization?: string;
  /** The URL without user, password or query: what logs and run records show. */
  label: string;
  /** The destination's webhook secret. Never logged. */
  secret: string;
  /** Attempts in all, the first included. */
  attempts: number;
  /** The wait before the second attempt; doubled for each further one. */
  backoffMs: number;
  timeoutMs: number;
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
  /** Per provider, where every verified delivery is relayed. */
  forwards: Partial<Record<ProviderName, readonly ForwardTarget[]>>;
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
  /** How far a Standard Webhooks `webhook-timestamp` may be from the clock, either way. */
  timestampToleranceMs: number;
  jobs: readonly JobConfig[];
  /** Things that load but deserve attention (`deployhook check` prints them). */
  warnings: readonly string[];
}
