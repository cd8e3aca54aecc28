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

/** Of `jobs`, the first with each different set of credentials. */
function oneForEachCredential(jobs: readonly JobConfig[]): JobConfig[] {
  const byKey = new Map<string, JobConfig>();
  for (const job of jobs) if (!byKey.has(credentialKey(job))) byKey.set(credentialKey(job), job);
  return [...byKey.values()];
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
  readonly #byProvider = new Map<ProviderName, JobConfig[]>();
  /** One job for each different set of credentials of a provider. */
  readonly #credentialsByProvider = new Map<ProviderName, JobConfig[]>();
  /** The same, for the jobs of each owner (a repository's first part: organisation, group, workspace). */
  readonly #credentialsByOwner = new Map<string, JobConfig[]>();

  constructor(jobs: readonly JobConfig[]) {
    for (const job of jobs) {
      const key = JobIndex.#key(job.provider, job.repoKey);
      const list = this.#byRepo.get(key) ?? [];
      list.push({ job, wantsBranch: refMatcher(job.branches), wantsTag: refMatcher(job.tags) });
      this.#byRepo.set(key, list);
      const jobsOfRepo = this.#jobsByRepo.get(key) ?? [];
      jobsOfRepo.push(job);
      this.#jobsByRepo.set(key, jobsOfRepo);
      this.#byName.set(job.name, job);
      const ofProvider = this.#byProvider.get(job.provider) ?? [];
      ofProvider.push(job);
      this.#byProvider.set(job.provider, ofProvider);
    }
    for (const [provider, jobsOfProvider] of this.#byProvider) this.#credentialsByProvider.set(provider, oneForEachCredential(jobsOfProvider));
    const byOwner = new Map<string, JobConfig[]>();
    for (const job of jobs) {
      const key = JobIndex.#ownerKey(job.provider, job.repoKey);
      const ofOwner = byOwner.get(key);
      if (ofOwner === undefined) byOwner.set(key, [job]);
      else ofOwner.push(job);
    }
    for (const [key, jobsOfOwner] of byOwner) this.#credentialsByOwner.set(key, oneForEachCredential(jobsOfOwner));
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
   * check per secret (an organisation's hook signs every repository's pushes with one).
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
