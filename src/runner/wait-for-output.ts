import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

const CHECK_MS = 50;

/**
 * Waits for a command's output pipes to end once its process group is gone. A pipe can
 * outlive the group only if a process that left it (`setsid`, a daemon) still holds it
 * open, so a pipe that has been quiet for `quietMs` while `output` was not full is given
 * up on. Output still in the pipe is not cut short: while `output` applies backpressure the
 * sources are paused, and that does not count as quiet. A process that keeps writing is not
 * waited for past `limitMs`: what the group wrote before it ended is read by then (a pipe
 * holds at most 1 MiB). Once `stop` is aborted (the run's timeout or cancel), the pipes get
 * `quietMs` more, busy or not. Resolves true when the pipes ended, false when they were given
 * up on (the caller stops reading them).
 */
export async function waitForOutputEnd(sources: readonly Readable[], output: Writable, quietMs: number, stop: AbortSignal, limitMs = Infinity): Promise<boolean> {
  const since = performance.now();
  let lastActivity = since;
  const active = () => {
    lastActivity = performance.now();
  };
  let check: NodeJS.Timeout | undefined;
  let lastMoment: NodeJS.Timeout | undefined;
  const givenUp = new Promise<false>((resolve) => {
    check = setInterval(() => {
      if (stop.aborted) lastMoment ??= setTimeout(resolve, quietMs, false);
      else if (output.writableNeedDrain) active();
      else if (performance.now() - lastActivity >= quietMs || performance.now() - since >= limitMs) resolve(false);
    }, CHECK_MS);
  });
  // 'activity': output a source's reader took in elsewhere (the capture thread of a chatty command).
  for (const source of sources) source.on('data', active).on('activity', active);
  const ended = Promise.all(sources.map((source) => finished(source).catch(() => undefined))).then(() => true);
  try {
    return await Promise.race([ended, givenUp]);
  } finally {
    clearInterval(check);
    clearTimeout(lastMoment);
    for (const source of sources) source.off('data', active).off('activity', active);
  }
}
