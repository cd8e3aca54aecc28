import { describe, expect, it } from 'vitest';
import { SyncCoalescer } from '../../src/store/sync-coalescer.js';

/** A task whose runs end when the test says so, with a log of when each started and ended. */
function controlledTask() {
  const events: string[] = [];
  const finishers: Array<(error?: Error) => void> = [];
  let runs = 0;
  const task = () => {
    runs += 1;
    const run = runs;
    events.push(`start ${run}`);
    return new Promise<void>((resolve, reject) => {
      finishers.push((error) => {
        events.push(`end ${run}`);
        if (error) reject(error);
        else resolve();
      });
    });
  };
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  return { task, events, finish: (error?: Error) => finishers.shift()?.(error), runs: () => runs, tick };
}

describe('SyncCoalescer', () => {
  it('serves every request made while a run is in progress with one next run, started only after the request', async () => {
    const { task, events, finish, runs, tick } = controlledTask();
    const coalescer = new SyncCoalescer(task);
    const track = (name: string, promise: Promise<void>) => promise.then(() => events.push(`${name} done`));

    events.push('request a');
    const a = track('a', coalescer.request());
    events.push('request b');
    const b = track('b', coalescer.request());
    await tick();
    expect(runs()).toBe(1);

    // Asked while run 1 is in flight: run 1 cannot cover them, since it started before.
    for (const name of ['c', 'd', 'e']) events.push(`request ${name}`);
    const later = ['c', 'd', 'e'].map((name) => track(name, coalescer.request()));
    await tick();
    expect(runs()).toBe(1);

    finish();
    await Promise.all([a, b]);
    await tick();
    expect(runs()).toBe(2);
    expect(events.filter((event) => event.endsWith(' done'))).toEqual(['a done', 'b done']);

    finish();
    await Promise.all(later);
    expect(runs()).toBe(2);
    expect(events).toEqual([
      'request a', 'request b', 'start 1',
      'request c', 'request d', 'request e',
      'end 1', 'a done', 'b done', 'start 2',
      'end 2', 'c done', 'd done', 'e done',
    ]);
  });

  it('rejects the requests of a run that failed, and serves later requests with a new run', async () => {
    const { task, finish, runs, tick } = controlledTask();
    const coalescer = new SyncCoalescer(task);
    const failed = coalescer.request();
    await tick();
    finish(new Error('EIO'));
    await expect(failed).rejects.toThrow('EIO');

    const next = coalescer.request();
    await tick();
    expect(runs()).toBe(2);
    finish();
    await expect(next).resolves.toBeUndefined();
    expect(coalescer.busy).toBe(false);
  });
});
