import picomatch from 'picomatch';
import type { JobConfig, ProviderName } from '../config/types.js';
import type { PushEvent } from '../providers/types.js';

/**
 * A branch (or tag) is wanted when a glob matches it and no `!glob` does. `*` stays within one path
 * segment (`release/*`); `**` crosses them. Dots are ordinary characters.
 */
export function refMatcher(globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false;
  const include = picomatch(globs.filter((glob) => !glob.startsWith('!')), { dot: true });
  const excluded = globs.filter((glob) => glob.startsWith('!')).map((glob) => glob.slice(1));
  const exclude = excluded.length > 0 ? picomatch(excluded, { dot: true }) : () => false;
  return (branch) => include(branch) && !exclude(branch);
}

/** Each job's secrets and signing tokens as one string, made once per job (a reload makes new jobs). */
const credentialKeys = new WeakMap<JobConfig, string>();
export function credentialKey(job: Pick<JobConfig, 'secrets' | 'signingTokens'>): string {
  let key = credentialKeys.get(job as JobConfig);
  if (key === undefined) credentialKeys.set(job as JobConfig, (key = JSON.stringify([job.secrets, job.signingTokens ?? []])));
  return key;
}

/** Keeps under `group` the first job with each different set of credentials. */
function keepFirstPerCredential<K>(groups: Map<K, Map<string, JobConfig>>, group: K, job: JobConfig): void {
  let ofGroup = groups.get(group);
  if (ofGroup === undefined) groups.set(group, (ofGroup = new Map()));
  if (!ofGroup.has(credentialKey(job))) ofGroup.set(credentialKey(job), job);
}

/** The jobs kept per group, as lists. */
function listed<K>(groups: ReadonlyMap<K, ReadonlyMap<string, JobConfig>>): Map<K, JobConfig[]> {
  return new Map([...groups].map(([group, jobs]) => [group, [...jobs.values()]]));
}

interface IndexedJob {
  job: JobConfig;
  wantsBranch: (branch: string) => boolean;
  wantsTag: (tag: string) => boolean;
}

/**
 * Jobs by provider and repository, so a delivery only ever looks at the jobs of its own
 * repository (matching does not scan every job). Branch globs are compiled once.
 */
export class JobIndex {
  readonly #byRepo = new Map<string, IndexedJob[]>();
  /** The same jobs without their matchers: what `candidates` returns, for every delivery. */
  readonly #jobsByRepo = new Map<string, JobConfig[]>();
  readonly #byName = new Map<string, JobConfig>();
  /** One job for each different set of credentials of a provider. */
  readonly #credentialsByProvider: ReadonlyMap<ProviderName, JobConfig[]>;
  /** The same, for the jobs of each owner (a repository's first part: organisation, group, workspace). */
  readonly #credentialsByOwner: ReadonlyMap<string, JobConfig[]>;

  constructor(jobs: readonly JobConfig[]) {
    const byProvider = new Map<ProviderName, Map<string, JobConfig>>();
    const byOwner = new Map<string, Map<string, JobConfig>>();
    for (const job of jobs) {
      const key = JobIndex.#key(job.provider, job.repoKey);
      const list = this.#byRepo.get(key) ?? [];
      list.push({ job, wantsBranch: refMatcher(job.branches), wantsTag: refMatcher(job.tags) });
      this.#byRepo.set(key, list);
      const jobsOfRepo = this.#jobsByRepo.get(key) ?? [];
      jobsOfRepo.push(job);
      this.#jobsByRepo.set(key, jobsOfRepo);
      this.#byName.set(job.name, job);
      keepFirstPerCredential(byProvider, job.provider, job);
      keepFirstPerCredential(byOwner, JobIndex.#ownerKey(job.provider, job.repoKey), job);
    }
    this.#credentialsByProvider = listed(byProvider);
    this.#credentialsByOwner = listed(byOwner);
  }

  static #ownerKey(provider: ProviderName, repo: string): string {
    return JobIndex.#key(provider, repo.split('/', 1)[0] ?? '');
  }

  static #key(provider: ProviderName, repo: string): string {
    return `${provider}\u0000${repo.toLowerCase()}`;
  }

  /** The jobs configured for this repository; a delivery is verified against their secrets. */
  candidates(provider: ProviderName, repo: string): readonly JobConfig[] {
    return this.#jobsByRepo.get(JobIndex.#key(provider, repo)) ?? [];
  }

  /** Of the given (verified) jobs, those whose branch globs (for a branch) or tag globs (for a tag) accept the push. */
  wanting(jobs: readonly JobConfig[], push: PushEvent): JobConfig[] {
    const entries = this.#byRepo.get(JobIndex.#key(push.provider, push.repo)) ?? [];
    const { branch, tag } = push;
    return entries
      .filter((entry) => jobs.includes(entry.job) && (branch !== undefined ? entry.wantsBranch(branch) : tag !== undefined && entry.wantsTag(tag)))
      .map((entry) => entry.job);
  }

  /**
   * One job for each different set of secrets (and signing tokens) the provider's jobs have: a
   * delivery verified against these is verified against every job of the provider, at one
   * check per set, however many jobs share it (an organisation's hook signs every repository's
   * pushes with one).
   */
  credentialsOf(provider: ProviderName): readonly JobConfig[] {
    return this.#credentialsByProvider.get(provider) ?? [];
  }

  /**
   * One job for each different set of secrets among the jobs of the repository's owner (the
   * organisation, group or workspace that names it first): the secrets a hook of that owner,
   * which also sends pushes for its repositories without a job, is signed with.
   */
  credentialsOfOwner(provider: ProviderName, repo: string): readonly JobConfig[] {
    return this.#credentialsByOwner.get(JobIndex.#ownerKey(provider, repo)) ?? [];
  }

  get(name: string): JobConfig | undefined {
    return this.#byName.get(name);
  }

  get jobs(): readonly JobConfig[] {
    return [...this.#byName.values()];
  }
}
