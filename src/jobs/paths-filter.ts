import picomatch from 'picomatch';
import type { CommitHistory } from '../git/changed-files.js';
import { isZeroCommit } from '../providers/validate.js';
import type { RunRecord } from './run-record.js';
import { printable } from '../log/printable.js';

/** Changed files listed in the run log when none matches. */
const LISTED_FILES = 50;
/** Matching files named in the run log when the command runs. */
const SHOWN_MATCHES = 5;

/**
 * A file matches when an include glob matches it and no `!` exclusion does; a list of only
 * exclusions means every file but those. `*` stays within one folder, `**` crosses them, and
 * dot files are ordinary files.
 */
export function pathsMatcher(globs: readonly string[]): (file: string) => boolean {
  const included = globs.filter((glob) => !glob.startsWith('!'));
  const excluded = globs.filter((glob) => glob.startsWith('!')).map((glob) => glob.slice(1));
  const include = included.length > 0 ? picomatch(included, { dot: true }) : () => true;
  const exclude = excluded.length > 0 ? picomatch(excluded, { dot: true }) : () => false;
  return (file) => include(file) && !exclude(file);
}

/**
 * Pushes and their repeats after a restart are filtered. An operator's deploy (and a
 * rollback) always runs, also when it is repeated after a restart: its trigger keeps who asked.
 */
export function pathsFilterApplies(run: RunRecord): boolean {
  return run.trigger.type !== 'manual' && run.trigger.requestedBy === undefined;
}

export interface PathsCheck {
  /** The job's `paths` globs. */
  paths: readonly string[];
  /** The commit the checkout is at now. */
  target: string;
  /** The commit the job's newest succeeded run deployed, if any. */
  lastDeployed: string | undefined;
  /** The push's `before`: all zeros for a new branch. */
  before: string;
  history: CommitHistory;
  /** Writes one line to the run log. */
  note: (text: string) => void;
}

export type PathsVerdict = { deploy: true } | { deploy: false; reason: string };

interface Base {
  sha: string;
  what: string;
}

const short = (sha: string) => sha.slice(0, 7);
const files = (count: number) => `${count} ${count === 1 ? 'file' : 'files'}`;

/**
 * What the target is compared with: the last deployed commit, else the push's `before`, each
 * only when the checkout has it. A tree diff needs no ancestry, so the last deployed commit
 * also serves after a force push, for a new branch, and after pushes that never deployed.
 */
async function chooseBase({ lastDeployed, before, history, note }: PathsCheck): Promise<Base | undefined> {
  if (lastDeployed !== undefined) {
    if (await history.hasCommit(lastDeployed)) return { sha: lastDeployed, what: 'the last deployed commit' };
    note(`paths: the last deployed commit ${printable(lastDeployed)} is not in the checkout`);
  }
  if (!isZeroCommit(before)) {
    if (await history.hasCommit(before)) return { sha: before, what: "the push's previous commit" };
    note(`paths: the push's previous commit ${printable(before)} is not in the checkout`);
  }
  return undefined;
}

/**
 * Decides whether the command runs: only when a file that changed between the base and the
 * target matches the job's `paths`. Without a base there is nothing to compare, so it runs.
 * Rejects with ChangedFilesError when git cannot list the changes, and with RunAbortedError
 * when the run is stopped meanwhile.
 */
export async function checkPaths(check: PathsCheck): Promise<PathsVerdict> {
  const { target, note } = check;
  const base = await chooseBase(check);
  if (base === undefined) {
    note('paths: no earlier commit to compare with (nothing deployed yet, and no previous commit of the push in the checkout): the command runs');
    return { deploy: true };
  }
  note(`paths: comparing ${base.what} ${base.sha} with ${target}`);
  const changed = await check.history.changedFiles(base.sha, target);
  const matching = changed.filter(pathsMatcher(check.paths));
  const between = `${files(changed.length)} changed between ${short(base.sha)} and ${short(target)}`;
  if (matching.length > 0) {
    const shown = matching.slice(0, SHOWN_MATCHES).map(printable).join(', ');
    const more = matching.length > SHOWN_MATCHES ? `, … and ${matching.length - SHOWN_MATCHES} more` : '';
    note(`paths: ${between}; ${matching.length} ${matching.length === 1 ? 'matches' : 'match'} paths: ${shown}${more}`);
    return { deploy: true };
  }
  note(`paths: ${between}; none matches paths${changed.length > 0 ? ':' : ''}`);
  for (const file of changed.slice(0, LISTED_FILES)) note(`  ${printable(file)}`);
  if (changed.length > LISTED_FILES) note(`  … and ${changed.length - LISTED_FILES} more`);
  return { deploy: false, reason: `no changed file matches paths (${between})` };
}
