/** How many lines may be logged per one-second window before the rest are counted, by kind, instead. */
export interface LineLimiter {
  /**
   * Whether a line of this kind may be logged now. Once `perSecond` lines were allowed in the
   * current window, it answers false and counts the line, and the counts are reported when
   * the window ends.
   */
  allow(kind: string): boolean;
  /** Reports what was counted and not logged so far, if anything (at shutdown). */
  flush(): void;
}

export interface LineLimiterOptions {
  perSecond: number;
  /** Called once per window in which lines were left out, with how many of each kind. */
  report: (leftOut: Record<string, number>) => void;
  /** Milliseconds on a monotonic clock. */
  now?: () => number;
}

const WINDOW_MS = 1_000;

/**
 * A fixed one-second window: the first `perSecond` lines of a window pass, the rest are
 * counted and reported when the window ends. The report comes from a timer, so it is
 * written even if the flood stops at once.
 */
export function createLineLimiter(options: LineLimiterOptions): LineLimiter {
  const now = options.now ?? (() => performance.now());
  let windowStart = Number.NEGATIVE_INFINITY;
  let allowed = 0;
  let leftOut = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;

  function flush(): void {
    clearTimeout(timer);
    timer = undefined;
    if (leftOut.size === 0) return;
    const counts = Object.fromEntries(leftOut);
    leftOut = new Map();
    options.report(counts);
  }

  return {
    allow(kind) {
      const at = now();
      if (at - windowStart >= WINDOW_MS) {
        flush();
        windowStart = at;
        allowed = 0;
      }
      if (allowed < options.perSecond) {
        allowed += 1;
        return true;
      }
      leftOut.set(kind, (leftOut.get(kind) ?? 0) + 1);
      timer ??= setTimeout(flush, Math.max(0, windowStart + WINDOW_MS - at));
      return false;
    },
    flush,
  };
}
