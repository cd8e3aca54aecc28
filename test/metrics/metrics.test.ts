import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/metrics/metrics.js';
import type { RunRecord } from '../../src/jobs/run-record.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition; labels parsed into an object so their order does not matter. */
function samples(body: string): Sample[] {
  const parsed: Sample[] = [];
  for (const line of body.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    parsed.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return parsed;
}

/** The samples named `name` whose labels include all of `labels`. */
function find(body: string, name: string, labels: Record<string, string> = {}): Sample[] {
  return samples(body).filter((s) => s.name === name && Object.entries(labels).every(([key, value]) => s.labels[key] === value));
}

function valueOf(body: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = find(body, name, labels);
  expect(found.length, `${name} ${JSON.stringify(labels)} matches more than one series`).toBeLessThanOrEqual(1);
  return found[0]?.value;
}

let counter = 0;
function run(fields: Partial<RunRecord> & Pick<RunRecord, 'job' | 'status'>): RunRecord {
  counter += 1;
  return {
    id: `run${counter}`,
    trigger: { type: 'webhook', provider: 'github', delivery: `d${counter}`, pusher: 'alice' },
    repo: 'acme/site',
    ref: 'refs/heads/main',
    branch: 'main',
    sha: 'a'.repeat(40),
    before: '0'.repeat(40),
    queuedAt: '2024-05-01T10:00:00.000Z',
    logPath: `/var/lib/deployhook/logs/run${counter}.log`,
    eventFile: `/var/lib/deployhook/events/run${counter}.json`,
    ...fields,
  };
}

function succeeded(job: string, commit: string, finishedAt: string): RunRecord {
  return run({ job, status: 'succeeded', deployedSha: commit, sha: commit, startedAt: finishedAt, finishedAt, durationMs: 1000 });
}

const SHA1 = '1'.repeat(40);
const SHA2 = '2'.repeat(40);

describe('createMetrics', () => {
  it('renders every metric with HELP and TYPE lines in the Prometheus text format', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.delivery('github', 'queued');
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:00:05.000Z'));
    const { contentType, body } = await metrics.render();

    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const expected = {
      deployhook_deliveries_total: 'counter',
      deployhook_runs_total: 'counter',
      deployhook_run_duration_seconds: 'histogram',
      deployhook_queue_depth: 'gauge',
      deployhook_last_success_timestamp_seconds: 'gauge',
      deployhook_deployed_commit_info: 'gauge',
      deployhook_process_cpu_seconds_total: 'counter',
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(body).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
      expect(body).toContain(`\n# TYPE ${name} ${type}\n`);
    }
  });

  it('keeps its metrics on a private registry, so two instances do not share counts', async () => {
    const first = createMetrics({ queueDepth: () => 0 });
    const second = createMetrics({ queueDepth: () => 0 });
    first.delivery('github', 'queued');
    expect(first.registry).not.toBe(second.registry);
    expect(valueOf((await second.render()).body, 'deployhook_deliveries_total', { provider: 'github' })).toBeUndefined();
  });

  it('counts deliveries by provider and outcome', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.delivery('github', 'queued');
    metrics.delivery('github', 'queued');
    metrics.delivery('github', 'rejected');
    metrics.delivery('gitlab', 'duplicate');
    const { body } = await metrics.render();

    expect(valueOf(body, 'deployhook_deliveries_total', { provider: 'github', outcome: 'queued' })).toBe(2);
    expect(valueOf(body, 'deployhook_deliveries_total', { provider: 'github', outcome: 'rejected' })).toBe(1);
    expect(valueOf(body, 'deployhook_deliveries_total', { provider: 'gitlab', outcome: 'duplicate' })).toBe(1);
    expect(find(body, 'deployhook_deliveries_total')).toHaveLength(3);
  });

  it('counts finished runs by job and status and ignores runs that are not final', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:00:05.000Z'));
    metrics.runFinished(run({ job: 'site', status: 'failed', startedAt: '2024-05-01T10:01:00.000Z', finishedAt: '2024-05-01T10:01:02.000Z', durationMs: 2000 }));
    metrics.runFinished(run({ job: 'api', status: 'superseded', finishedAt: '2024-05-01T10:02:00.000Z' }));
    metrics.runFinished(run({ job: 'api', status: 'running', startedAt: '2024-05-01T10:02:00.000Z' }));
    const { body } = await metrics.render();

    expect(valueOf(body, 'deployhook_runs_total', { job: 'site', status: 'succeeded' })).toBe(1);
    expect(valueOf(body, 'deployhook_runs_total', { job: 'site', status: 'failed' })).toBe(1);
    expect(valueOf(body, 'deployhook_runs_total', { job: 'api', status: 'superseded' })).toBe(1);
    expect(find(body, 'deployhook_runs_total', { status: 'running' })).toEqual([]);
  });

  it('observes the duration of runs that started, in seconds, into deploy-sized buckets', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    const started = { startedAt: '2024-05-01T10:00:00.000Z', finishedAt: '2024-05-01T10:01:30.000Z' };
    metrics.runFinished(run({ job: 'site', status: 'succeeded', deployedSha: SHA1, ...started, durationMs: 90_000 }));
    metrics.runFinished(run({ job: 'site', status: 'succeeded', deployedSha: SHA1, ...started, durationMs: 3_000 }));
    // Superseded while queued: it never started, so it has no duration to observe.
    metrics.runFinished(run({ job: 'site', status: 'superseded', finishedAt: '2024-05-01T10:02:00.000Z' }));
    const { body } = await metrics.render();

    const labels = { job: 'site', status: 'succeeded' };
    expect(valueOf(body, 'deployhook_run_duration_seconds_count', labels)).toBe(2);
    expect(valueOf(body, 'deployhook_run_duration_seconds_sum', labels)).toBe(93);
    expect(valueOf(body, 'deployhook_run_duration_seconds_bucket', { ...labels, le: '5' })).toBe(1);
    expect(valueOf(body, 'deployhook_run_duration_seconds_bucket', { ...labels, le: '60' })).toBe(1);
    expect(valueOf(body, 'deployhook_run_duration_seconds_bucket', { ...labels, le: '120' })).toBe(2);
    expect(valueOf(body, 'deployhook_run_duration_seconds_bucket', { ...labels, le: '3600' })).toBe(2);
    expect(find(body, 'deployhook_run_duration_seconds_count', { status: 'superseded' })).toEqual([]);
  });

  it('reads the queue depth from the callback at each scrape', async () => {
    let depth = 3;
    const metrics = createMetrics({ queueDepth: () => depth });
    expect(valueOf((await metrics.render()).body, 'deployhook_queue_depth')).toBe(3);
    depth = 0;
    expect(valueOf((await metrics.render()).body, 'deployhook_queue_depth')).toBe(0);
  });

  it('follows the newest success for last-success and deployed commit, and drops the previous commit series', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:00:05.000Z'));
    let { body } = await metrics.render();
    expect(valueOf(body, 'deployhook_last_success_timestamp_seconds', { job: 'site' })).toBe(Date.parse('2024-05-01T10:00:05.000Z') / 1000);
    expect(find(body, 'deployhook_deployed_commit_info', { job: 'site' })).toEqual([{ name: 'deployhook_deployed_commit_info', labels: { job: 'site', commit: SHA1 }, value: 1 }]);

    metrics.runFinished(succeeded('site', SHA2, '2024-05-01T11:00:00.000Z'));
    ({ body } = await metrics.render());
    expect(valueOf(body, 'deployhook_last_success_timestamp_seconds', { job: 'site' })).toBe(Date.parse('2024-05-01T11:00:00.000Z') / 1000);
    expect(find(body, 'deployhook_deployed_commit_info', { job: 'site' })).toEqual([{ name: 'deployhook_deployed_commit_info', labels: { job: 'site', commit: SHA2 }, value: 1 }]);
  });

  it('keeps one deployed commit series per job', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:00:00.000Z'));
    metrics.runFinished(succeeded('api', SHA2, '2024-05-01T10:00:00.000Z'));
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:05:00.000Z'));
    const { body } = await metrics.render();

    expect(find(body, 'deployhook_deployed_commit_info').map((s) => s.labels)).toEqual(
      expect.arrayContaining([{ job: 'site', commit: SHA1 }, { job: 'api', commit: SHA2 }]),
    );
    expect(find(body, 'deployhook_deployed_commit_info')).toHaveLength(2);
  });

  it('does not change the deployed commit or last success when a run fails', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:00:00.000Z'));
    metrics.runFinished(
      run({ job: 'site', status: 'failed', sha: SHA2, deployedSha: SHA2, startedAt: '2024-05-01T11:00:00.000Z', finishedAt: '2024-05-01T11:00:09.000Z', durationMs: 9000 }),
    );
    const { body } = await metrics.render();

    expect(find(body, 'deployhook_deployed_commit_info', { job: 'site' }).map((s) => s.labels.commit)).toEqual([SHA1]);
    expect(valueOf(body, 'deployhook_last_success_timestamp_seconds', { job: 'site' })).toBe(Date.parse('2024-05-01T10:00:00.000Z') / 1000);
  });

  it('ignores a success that finished before the one already recorded', async () => {
    const metrics = createMetrics({ queueDepth: () => 0 });
    metrics.runFinished(succeeded('site', SHA2, '2024-05-01T11:00:00.000Z'));
    metrics.runFinished(succeeded('site', SHA1, '2024-05-01T10:00:00.000Z'));
    const { body } = await metrics.render();

    expect(find(body, 'deployhook_deployed_commit_info', { job: 'site' }).map((s) => s.labels.commit)).toEqual([SHA2]);
    expect(valueOf(body, 'deployhook_last_success_timestamp_seconds', { job: 'site' })).toBe(Date.parse('2024-05-01T11:00:00.000Z') / 1000);
  });

  it('restores last success and deployed commit from initial runs without counting them', async () => {
    const metrics = createMetrics({
      queueDepth: () => 0,
      initialRuns: [
        succeeded('site', SHA2, '2024-05-01T12:00:00.000Z'),
        succeeded('site', SHA1, '2024-05-01T09:00:00.000Z'),
        run({ job: 'site', status: 'failed', deployedSha: '3'.repeat(40), startedAt: '2024-05-01T13:00:00.000Z', finishedAt: '2024-05-01T13:00:01.000Z', durationMs: 1000 }),
        run({ job: 'api', status: 'interrupted', startedAt: '2024-05-01T13:00:00.000Z', finishedAt: '2024-05-01T13:00:01.000Z', durationMs: 1000 }),
      ],
    });
    const { body } = await metrics.render();

    expect(valueOf(body, 'deployhook_last_success_timestamp_seconds', { job: 'site' })).toBe(Date.parse('2024-05-01T12:00:00.000Z') / 1000);
    expect(find(body, 'deployhook_deployed_commit_info').map((s) => s.labels)).toEqual([{ job: 'site', commit: SHA2 }]);
    expect(find(body, 'deployhook_last_success_timestamp_seconds', { job: 'api' })).toEqual([]);
    expect(find(body, 'deployhook_runs_total')).toEqual([]);
    expect(find(body, 'deployhook_run_duration_seconds_count')).toEqual([]);
  });
});
