/**
 * Every error deployhook raises on purpose is one of these classes. Callers branch
 * on the class (or its `code`), never on the message text. The original error, when
 * there is one, is kept as `cause`.
 */
export class DeployhookError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One problem found in a config file, with the path of the offending value. */
export interface ConfigIssue {
  /** e.g. `jobs[1].branches[0]`; empty for the document itself. */
  path: string;
  message: string;
}

/** The config could not be loaded; `issues` lists every problem, not just the first. */
export class ConfigError extends DeployhookError {
  readonly issues: readonly ConfigIssue[];
  readonly file: string;

  constructor(file: string, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    const lines = issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message));
    super('CONFIG_INVALID', `Invalid config ${file}:\n  ${lines.join('\n  ')}`, options);
    this.issues = issues;
    this.file = file;
  }
}

/** A git step of a run failed (clone, fetch, checkout, clean). */
export class GitSyncError extends DeployhookError {
  /** The label of the step that failed, when a step did. */
  readonly step: string | undefined;

  constructor(message: string, options?: { cause?: unknown; step?: string }) {
    super('GIT_SYNC_FAILED', message, options);
    this.step = options?.step;
  }
}

/** The commit a run was asked to deploy is not on the remote. */
export class CommitNotFoundError extends DeployhookError {
  readonly sha: string;

  constructor(sha: string, remote: string, options?: { cause?: unknown }) {
    super('COMMIT_NOT_FOUND', `Expected commit ${sha} on the remote ${remote}, but it was not found after fetching. Was the branch force-pushed or the commit never pushed?`, options);
    this.sha = sha;
  }
}

/** The run was stopped by its timeout or cancelled while a step was in progress. */
export class RunAbortedError extends DeployhookError {
  constructor(reason: 'timeout' | 'cancelled', options?: { cause?: unknown }) {
    super(reason === 'timeout' ? 'RUN_TIMED_OUT' : 'RUN_CANCELLED', reason === 'timeout' ? 'The run exceeded its timeout' : 'The run was cancelled', options);
  }
}

/** git could not list the files that changed between two commits of a checkout (the `paths` filter). */
export class ChangedFilesError extends DeployhookError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHANGED_FILES_FAILED', message, options);
  }
}
