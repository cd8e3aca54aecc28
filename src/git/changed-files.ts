import { ChangedFilesError } from '../errors.js';
import { COMMIT_PATTERN } from '../providers/validate.js';
import { checkoutGitRunner, type CheckoutGitOptions } from './git-runner.js';

/**
 * The job's checkout (already synced), with the remote and credentials from config so git runs
 * with the same environment as for the sync. Aborting kills the running git process; the
 * question then rejects with RunAbortedError.
 */
export type CommitHistoryOptions = CheckoutGitOptions;

/** Questions about the commits a checkout holds. Nothing here contacts the remote. */
export interface CommitHistory {
  /** Whether the commit is in the checkout (`git cat-file -e <sha>^{commit}`). */
  hasCommit(sha: string): Promise<boolean>;
  /**
   * The paths whose content differs between the trees of two commits, in git's order. No
   * ancestry is needed. Renames are not detected, so a renamed file counts as both paths.
   */
  changedFiles(base: string, target: string): Promise<string[]>;
}

function checkCommit(sha: string): string {
  if (!COMMIT_PATTERN.test(sha)) throw new ChangedFilesError(`Expected a commit of 40 or 64 lowercase hex characters, got ${JSON.stringify(sha)}`);
  return sha;
}

export function openCommitHistory(options: CommitHistoryOptions): CommitHistory {
  const git = checkoutGitRunner(options);
  return {
    async hasCommit(sha) {
      if (!COMMIT_PATTERN.test(sha)) return false;
      return (await git.query(['cat-file', '-e', '--', `${sha}^{commit}`])) !== undefined;
    },
    async changedFiles(base, target) {
      const listed = await git.query(['diff', '--name-only', '-z', '--no-renames', checkCommit(base), checkCommit(target), '--']);
      if (listed === undefined) {
        throw new ChangedFilesError(`Expected git to list the files changed between ${base} and ${target} in ${options.checkout}, but \`git diff\` failed; check that both commits are in the checkout`);
      }
      // NUL-separated, so any byte but NUL may be in a name. The answer arrives trimmed: a
      // first name that starts with whitespace loses that whitespace.
      return listed.split('\0').filter((name) => name !== '');
    },
  };
}
