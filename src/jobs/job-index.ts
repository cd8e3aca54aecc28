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

  /** Every job of a provider: a probe that names no repository is verified against them all. */
  ofProvider(provider: ProviderName): readonly JobConfig[] {
    return this.#byProvider.get(provider) ?? [];
  }

  get(name: string): JobConfig | undefined {
    return this.#byName.get(name);
  }

  get jobs(): readonly JobConfig[] {
    return [...this.#byName.values()];
  }
}
