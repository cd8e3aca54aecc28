import { formatDuration } from '../config/duration.js';
import { printable } from '../log/printable.js';
import type { RunLog } from '../log/run-log.js';
import type { Outcome } from './run-outcome.js';
import type { RunRecord } from './run-record.js';

/** The first lines of a run log: what runs, for which commit, and who asked. */
export function writeHeader(log: RunLog, run: RunRecord): void {
  const { trigger } = run;
  log.note(`run ${run.id} of job ${run.job}${trigger.retryOf ? ` (repeats interrupted run ${trigger.retryOf})` : ''}`);
  // An event run has a source instead of a repository, and a ref and commit only with a remote.
  log.note(run.source !== undefined ? `event:    from ${printable(run.source)}` : `repo:     ${printable(run.repo)}`);
  if (run.source === undefined || run.ref !== '') log.note(`ref:      ${printable(run.ref)}`);
  if (run.source === undefined || run.sha !== '') log.note(`commit:   ${run.sha}`);
  const origin =
    trigger.type === 'manual' ? `manual deploy requested by ${printable(trigger.requestedBy ?? 'unknown')}`
    : run.source !== undefined ? `${trigger.provider} event from ${printable(run.source)}`
    : `${trigger.provider}, pushed by ${printable(trigger.pusher) || 'unknown'}`;
  log.note(`delivery: ${printable(trigger.delivery)} (${origin})`);
  if (run.joined !== undefined) log.note(`joined:   ${run.joined} more ${run.joined === 1 ? 'delivery' : 'deliveries'} of this commit while the run waited`);
  log.note(`started:  ${run.startedAt ?? ''}`);
}

/** The last line of a run log: one line, whatever the reason quotes (a branch's name, git's words). */
export function closingLine(outcome: Outcome, durationMs: number): string {
  const how = outcome.signal ? `signal ${outcome.signal}` : outcome.exitCode !== undefined && outcome.exitCode !== null ? `exit code ${outcome.exitCode}` : 'no exit code';
  return `finished: ${outcome.status}, ${how}, after ${formatDuration(durationMs)}${outcome.reason ? ` (${printable(outcome.reason)})` : ''}`;
}

