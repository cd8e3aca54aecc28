import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLineLimiter } from '../../src/log/line-limit.js';

let clock: number;
let reports: Array<Record<string, number>>;

beforeEach(() => {
  vi.useFakeTimers();
  clock = 5_000;
  reports = [];
});

afterEach(() => {
  vi.useRealTimers();
});

function limiter(perSecond: number) {
  return createLineLimiter({ perSecond, report: (leftOut) => reports.push(leftOut), now: () => clock });
}

/** Moves the limiter's clock and node's timers together. */
function advance(ms: number): void {
  clock += ms;
  vi.advanceTimersByTime(ms);
}

describe('createLineLimiter', () => {
  it('lets the first lines of a second through and counts the rest by kind, reported when the second ends', () => {
    const lines = limiter(3);
    const answers = ['ignored', 'rejected', 'ignored', 'ignored', 'rejected', 'ignored'].map((kind) => lines.allow(kind));
    expect(answers).toEqual([true, true, true, false, false, false]);
    advance(999);
    expect(reports).toEqual([]);
    advance(1);
    expect(reports).toEqual([{ ignored: 2, rejected: 1 }]);
  });

  it('starts a new second with a fresh allowance', () => {
    const lines = limiter(2);
    expect([lines.allow('ignored'), lines.allow('ignored'), lines.allow('ignored')]).toEqual([true, true, false]);
    advance(1_000);
    expect([lines.allow('ignored'), lines.allow('ignored'), lines.allow('ignored')]).toEqual([true, true, false]);
    expect(reports).toEqual([{ ignored: 1 }]);
    advance(1_000);
    expect(reports).toEqual([{ ignored: 1 }, { ignored: 1 }]);
  });

  it('reports nothing for a second in which every line passed', () => {
    const lines = limiter(5);
    for (let i = 0; i < 5; i++) lines.allow('ignored');
    advance(3_000);
    lines.flush();
    expect(reports).toEqual([]);
  });

  it('reports what is pending on flush, once, and not again when the second ends', () => {
    const lines = limiter(1);
    lines.allow('rejected');
    lines.allow('rejected');
    lines.allow('rejected');
    lines.flush();
    expect(reports).toEqual([{ rejected: 2 }]);
    advance(2_000);
    expect(reports).toEqual([{ rejected: 2 }]);
  });

  it('reports a window left behind when the next line arrives after its timer was due', () => {
    const lines = limiter(1);
    lines.allow('ignored');
    lines.allow('ignored');
    // The clock moves on without the timer firing (a busy event loop): the next line reports first.
    clock += 1_500;
    expect(lines.allow('ignored')).toBe(true);
    expect(reports).toEqual([{ ignored: 1 }]);
  });
});
