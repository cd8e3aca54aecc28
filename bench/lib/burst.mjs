// One burst against one server: COUNT signed pushes for COUNT different commits of one
// branch, paced evenly over DURATION ms (open loop: latency counts from the time a push was
// due, so a slow server is not excused by a client that waits for it). Before each push goes
// out, the bare repository's main is at its commit or a later one, as a Git host moves the
// branch before it sends the webhook. 64 keep-alive connections, opened before the clock
// starts, send pre-built requests, one at a time each; pushes wait for a free one.
// Meanwhile the checkout's HEAD is watched. Afterwards it waits until the server is idle
// and prints one JSON object with what happened. bench/burst.sh runs it for both servers.
//
//   node bench/lib/burst.mjs --server deployhook|webhook --url URL --bare BARE.git
//     --commits FILE (oldest first; line 1 is already deployed) --checkout DIR
//     [--daemon-log FILE] (deployhook) [--events FILE] (webhook) [--count 1000] [--duration-ms 1000]
//     [--pid PID] (the server's: its CPU time over the burst is reported, see cpuSeconds)
//     [--burst N] (1 by default: the server's first burst since it started; 2 for the next one)
// With BENCH_BURST_TIMELINE=FILE it also appends one JSON line per push to FILE: the server, the burst,
// when the push was due (ms after the first), its status, its latency and the latency's parts.
// deployhook's runs are read from its own log (`run started`, `run finished`, `run superseded`
// lines at level info, and past 100 superseded runs a second the `leftOut` counts of the rest),
// not from the run records: with the default keep_runs most records of a burst are deleted
// before it ends, as they would be on a real server.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { examplePush, pushBody, signature } from './payload.mjs';

const { values: args } = parseArgs({
  options: {
    server: { type: 'string' },
    url: { type: 'string' },
    bare: { type: 'string' },
    commits: { type: 'string' },
    checkout: { type: 'string' },
    'daemon-log': { type: 'string' },
    events: { type: 'string' },
    count: { type: 'string', default: '1000' },
    'duration-ms': { type: 'string', default: '1000' },
    sockets: { type: 'string', default: '64' },
    'timeout-s': { type: 'string', default: '240' },
    pid: { type: 'string' },
    burst: { type: 'string', default: '1' },
  },
});
const secret = process.env.BENCH_SECRET;
if (!args.server || !args.url || !args.bare || !args.commits || !args.checkout || !secret) {
  console.error('usage: burst.mjs --server S --url URL --bare DIR --commits FILE --checkout DIR [--daemon-log FILE | --events FILE]; secret in $BENCH_SECRET');
  process.exit(2);
}
const count = Number(args.count);
const burst = Number(args.burst);
/** Where this burst's lines start in webhook's events file, read before any push goes out: the server's earlier bursts wrote what comes before. */
const eventsFrom = args.events === undefined ? 0 : (statSync(args.events, { throwIfNoEntry: false })?.size ?? 0);
const durationMs = Number(args['duration-ms']);
const commits = readFileSync(args.commits, 'utf8').trim().split('\n');
if (commits.length < count + 1) throw new Error(`expected at least ${count + 1} commits in ${args.commits}, got ${commits.length}`);
const indexOf = new Map(commits.map((sha, index) => [sha, index]));
const newest = commits[count];
const nonce = `${Date.now().toString(16).slice(-8)}`;
const url = new URL(args.url);

// Everything a push needs is made before the clock starts.
const template = examplePush();
const pushes = [];
for (let i = 1; i <= count; i++) {
  const body = pushBody(template, { repo: 'bench/app', ref: 'refs/heads/main', after: commits[i], before: commits[i - 1] });
  pushes.push({
    sha: commits[i],
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': String(body.length),
      'user-agent': 'GitHub-Hookshot/bench',
      'x-github-event': 'push',
      'x-github-hook-id': '42',
      'x-github-delivery': `${nonce}-0000-4000-8000-${String(i).padStart(12, '0')}`,
      'x-hub-signature-256': signature(secret, body),
    },
  });
}
for (const push of pushes) {
  const head = [`POST ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, ...Object.entries(push.headers).map(([name, value]) => `${name}: ${value}`), '', ''].join('\r\n');
  push.bytes = Buffer.concat([Buffer.from(head, 'latin1'), push.body]);
}

const mainRef = join(args.bare, 'refs', 'heads', 'main');
const mainTemp = join(args.bare, 'bench-main.tmp');
/**
 * Resolves once main is at commit `index` of the list or a later one. Moves happen one at a
 * time, off the event loop, and a move goes straight to the newest commit asked for: while
 * the server and git work the same disk a rename can take a millisecond, and one move per
 * push (as the sender first did, synchronously) put the sender, not the server, seconds
 * behind. Like a Git host under a burst, a push may then go out after the branch has moved on.
 */
let mainAt = 0;
let wanted = 0;
let moving = false;
const waitingForMain = [];
function moveMain(index) {
  if (mainAt >= index) return Promise.resolve();
  wanted = Math.max(wanted, index);
  const moved = new Promise((resolve) => waitingForMain.push({ index, resolve }));
  if (!moving) void moveLoop();
  return moved;
}
async function moveLoop() {
  moving = true;
  while (wanted > mainAt) {
    const target = wanted;
    // The new content is written outside refs/: git reads every file under refs/heads/ as a
    // branch, and would read one caught between its creation and its write as a broken one.
    await writeFile(mainTemp, `${commits[target]}\n`);
    await rename(mainTemp, mainRef);
    mainAt = target;
    // In push order, so that the pushes go out in order.
    const ready = waitingForMain.filter((waiter) => waiter.index <= mainAt);
    waitingForMain.splice(0, waitingForMain.length, ...waitingForMain.filter((waiter) => waiter.index > mainAt));
    for (const waiter of ready) waiter.resolve();
  }
  moving = false;
}

/** Clock ticks a second, the unit of /proc/PID/stat's times. */
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/**
 * CPU time (utime + stime, in seconds) from /proc/PID/stat: of a whole process (all its threads)
 * or, with a task id, of one thread; undefined when there is no such process. The fields are
 * read after the name, which may hold spaces.
 */
function cpuSeconds(pid, task) {
  try {
    const stat = readFileSync(task === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${task}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}
/**
 * The server's CPU (all its threads; for deployhook also its main thread, the thread whose id
 * is the pid: webhook's goroutines move between threads) and the sender's own, in seconds.
 */
function cpuNow() {
  const pid = args.pid === undefined ? undefined : Number(args.pid);
  const own = process.cpuUsage();
  return {
    server: pid === undefined ? undefined : cpuSeconds(pid),
    serverMain: pid === undefined || args.server !== 'deployhook' ? undefined : cpuSeconds(pid, pid),
    sender: (own.user + own.system) / 1e6,
  };
}

/** The checkout's HEAD commit, read from .git without starting git. */
function headOf(checkout) {
  try {
    const head = readFileSync(join(checkout, '.git', 'HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head;
    const ref = head.slice(5);
    try {
      return readFileSync(join(checkout, '.git', ref), 'utf8').trim();
    } catch {
      const packed = readFileSync(join(checkout, '.git', 'packed-refs'), 'utf8');
      return packed.split('\n').find((line) => line.endsWith(` ${ref}`))?.split(' ')[0];
    }
  } catch {
    return undefined;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => performance.now();

const results = [];

/**
 * Parses one HTTP/1.1 response at the start of `bytes`: undefined until it is complete. Both
 * servers answer with a Content-Length; chunked bodies are read too.
 */
function parseResponse(bytes) {
  const headEnd = bytes.indexOf('\r\n\r\n');
  if (headEnd === -1) return undefined;
  const lines = bytes.subarray(0, headEnd).toString('latin1').split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = new Map(lines.slice(1).map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  // HTTP/1.0 closes unless it says keep-alive; HTTP/1.1 keeps the connection unless it says close.
  const connection = headers.get('connection') ?? '';
  const close = lines[0].startsWith('HTTP/1.0') ? !/keep-alive/i.test(connection) : /close/i.test(connection);
  let offset = headEnd + 4;
  if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
    const parts = [];
    for (;;) {
      const lineEnd = bytes.indexOf('\r\n', offset);
      if (lineEnd === -1) return undefined;
      const size = parseInt(bytes.subarray(offset, lineEnd).toString('latin1'), 16);
      if (!Number.isInteger(size) || size < 0) return { status: 0, body: Buffer.from('malformed chunked body'), close: true, consumed: bytes.length };
      if (bytes.length < lineEnd + 2 + size + 2) return undefined;
      parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
      offset = lineEnd + 2 + size + 2;
      if (size === 0) return { status, body: Buffer.concat(parts), close, consumed: offset };
    }
  }
  const length = Number(headers.get('content-length') ?? 0);
  if (bytes.length < offset + length) return undefined;
  return { status, body: bytes.subarray(offset, offset + length), close, consumed: offset + length };
}

/**
 * The sender's keep-alive connections, each with one request at a time, and the requests that
 * wait for a free one. Raw sockets with each request's bytes built before the clock starts:
 * node's HTTP client cost the sender about as much CPU per push as the server it measured,
 * on the same 2 cores.
 */
const idle = [];
const waiting = [];

class Connection {
  constructor() {
    this.socket = undefined;
    this.pending = Buffer.alloc(0);
    this.current = undefined;
  }

  connect() {
    this.pending = Buffer.alloc(0);
    const socket = net.connect({ host: url.hostname, port: Number(url.port), noDelay: true });
    this.socket = socket;
    socket.on('data', (chunk) => this.#onData(chunk));
    let failure = 'connection closed';
    socket.on('error', (error) => {
      failure = String(error);
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      if (this.current) this.#finish({ status: 0, body: Buffer.from(failure) });
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
  }

  start(job) {
    this.current = job;
    if (this.socket === undefined) this.connect().catch(() => undefined);
    job.writtenAt = now();
    lastWrittenAt = job.writtenAt;
    this.socket.write(job.bytes);
  }

  #onData(chunk) {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const response = this.current && parseResponse(this.pending);
    if (!response) return;
    this.pending = this.pending.subarray(response.consumed);
    if (response.close) {
      this.socket.destroy();
      this.socket = undefined;
    }
    this.#finish(response);
  }

  #finish({ status, body }) {
    const job = this.current;
    this.current = undefined;
    const at = now();
    results.push({ status, dueMs: job.due - t0, latencyMs: at - job.due, fromWriteMs: at - job.writtenAt, mainWaitMs: job.queuedAt - job.due, body: body.toString('utf8') });
    job.resolve();
    idle.push(this);
    dispatch();
  }
}

function dispatch() {
  while (waiting.length > 0 && idle.length > 0) idle.pop().start(waiting.shift());
}

/** Queues a push for the next free connection; `queuedAt` is after main has moved. */
function send(push, due) {
  return new Promise((resolve) => {
    waiting.push({ bytes: push.bytes, due, queuedAt: now(), resolve });
    dispatch();
  });
}
let lastWrittenAt = 0;

const connections = Array.from({ length: Number(args.sockets) }, () => new Connection());
const connectTimeout = setTimeout(() => {
  console.error(`burst.mjs: could not open ${connections.length} connections to ${url.host} within 10 s`);
  process.exit(1);
}, 10_000);
await Promise.all(connections.map((connection) => connection.connect()));
clearTimeout(connectTimeout);
idle.push(...connections);

// The HEAD watch: every change, with its time since the burst started.
const headChanges = [];
let lastHead = headOf(args.checkout);
let t0 = 0;
const watch = setInterval(() => {
  const head = headOf(args.checkout);
  if (head !== undefined && head !== lastHead) {
    lastHead = head;
    headChanges.push({ atMs: now() - t0, commit: indexOf.get(head) ?? -1 });
  }
}, 5);

t0 = now() + 20;
const wallT0 = Date.now() + 20;
// CPU is counted from here (20 ms before the first push is due) until the last reply: the
// burst's own second, not the runs after it.
const cpuAtStart = cpuNow();
const interval = durationMs / count;
const inFlight = [];
for (let i = 0; i < count; ) {
  const due = t0 + i * interval;
  if (now() < due) {
    await sleep(Math.max(0, due - now() - 1));
    continue;
  }
  const push = pushes[i];
  // The push goes out once main has moved, as a Git host sends it after updating the ref.
  inFlight.push(moveMain(i + 1).then(() => send(push, due)));
  i += 1;
  // Behind schedule the loop sends without sleeping; it still lets replies (and their
  // timestamps) through after every push, or its own backlog would delay them too.
  await new Promise((resolve) => setImmediate(resolve));
}
await Promise.all(inFlight);
const ackedMs = now() - t0;
const cpuAtEnd = cpuNow();
const cpuSpent = (key) => (cpuAtStart[key] === undefined || cpuAtEnd[key] === undefined ? null : Math.round((cpuAtEnd[key] - cpuAtStart[key]) * 100) / 100);
// When the last request was written to its connection (after main moved and a connection was free).
const sentMs = lastWrittenAt - t0;

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
const sorted = (key) => results.filter((result) => result[key] !== undefined).map((result) => result[key]).sort((a, b) => a - b);
const latencies = sorted('latencyMs');
if (process.env.BENCH_BURST_TIMELINE) appendFileSync(process.env.BENCH_BURST_TIMELINE, results.map(({ body: _body, ...rest }) => JSON.stringify({ server: args.server, burst, ...rest })).join('\n') + '\n');
// The parts of each latency: waiting for main to move, for a free connection, and from the
// request's write to the reply's end (the server's part, and the network's).
const fromWrite = sorted('fromWriteMs');
const mainWait = sorted('mainWaitMs');
const statuses = {};
for (const result of results) statuses[result.status] = (statuses[result.status] ?? 0) + 1;
const accepted = args.server === 'deployhook' ? 202 : 200;

/**
 * Runs of this burst, as the daemon's log tells them: by run id, status and times; and how many
 * superseded runs were counted instead of logged one by one (past 100 a second), in the lines
 * written since this burst began.
 */
function burstRuns() {
  const runs = new Map();
  let supersededUnlisted = 0;
  const text = readFileSync(args['daemon-log'], 'utf8');
  for (const line of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
    if (line.includes('"leftOut"')) {
      const entry = JSON.parse(line);
      if (entry.area === 'queue' && entry.time >= wallT0) supersededUnlisted += entry.leftOut.superseded ?? 0;
      continue;
    }
    if (!line.includes(nonce)) continue;
    const entry = JSON.parse(line);
    if (!String(entry.delivery ?? '').startsWith(nonce) || typeof entry.run !== 'string') continue;
    const run = runs.get(entry.run) ?? { status: 'queued' };
    runs.set(entry.run, run);
    const at = new Date(entry.time).toISOString();
    if (entry.msg === 'run started') Object.assign(run, { status: 'running', startedAt: at, sha: entry.sha });
    else if (entry.msg === 'run finished') Object.assign(run, { status: entry.status, finishedAt: at, deployedSha: entry.deployedSha, reason: `exit code ${entry.exitCode}` });
    else if (/^run (superseded|cancelled)$/.test(entry.msg)) Object.assign(run, { status: entry.status, finishedAt: at });
  }
  return { runs: [...runs.values()], supersededUnlisted };
}

function events() {
  try {
    return readFileSync(args.events).subarray(eventsFrom).toString('utf8').trim().split('\n').filter(Boolean).map((line) => {
      const [kind, sha, pid, time, rc] = line.split(' ');
      return { kind, sha, pid, time: Number(time) * 1000, rc: rc === undefined ? undefined : Number(rc) };
    });
  } catch {
    return [];
  }
}

const deadline = now() + Number(args['timeout-s']) * 1000;
let settled = false;
let report;
while (now() < deadline) {
  if (args.server === 'deployhook') {
    const { runs, supersededUnlisted } = burstRuns();
    const open = runs.filter((run) => run.status === 'queued' || run.status === 'running');
    if (runs.length + supersededUnlisted >= (statuses[202] ?? 0) && open.length === 0) {
      settled = true;
      const by = {};
      for (const run of runs) by[run.status] = (by[run.status] ?? 0) + 1;
      if (supersededUnlisted > 0) by.superseded = (by.superseded ?? 0) + supersededUnlisted;
      const executed = runs.filter((run) => run.startedAt !== undefined);
      const newestRun = executed.filter((run) => run.deployedSha === newest && run.status === 'succeeded').sort((a, b) => a.finishedAt.localeCompare(b.finishedAt))[0];
      const lastEnd = Math.max(...executed.map((run) => Date.parse(run.finishedAt)));
      report = {
        runsRecorded: runs.length + supersededUnlisted,
        runStatuses: by,
        runsExecuted: executed.length,
        maxAtOnce: maxAtOnce(executed.map((run) => [Date.parse(run.startedAt), Date.parse(run.finishedAt)])),
        newestDeployedDoneMs: newestRun ? Date.parse(newestRun.finishedAt) - wallT0 : null,
        idleMs: lastEnd - wallT0,
        executedCommits: executed.map((run) => indexOf.get(run.deployedSha ?? run.sha) ?? -1),
        failures: executed.filter((run) => run.status !== 'succeeded').map((run) => run.reason),
      };
      break;
    }
  } else {
    const list = events();
    const starts = list.filter((event) => event.kind === 'start');
    const ends = list.filter((event) => event.kind === 'end');
    if (starts.length >= (statuses[200] ?? 0) && ends.length === starts.length) {
      settled = true;
      const byPid = new Map(starts.map((event) => [event.pid, [event.time, Infinity]]));
      for (const event of ends) byPid.get(event.pid)[1] = event.time;
      const newestOk = ends.filter((event) => event.sha === newest && event.rc === 0)[0];
      report = {
        deploysStarted: starts.length,
        deploysSucceeded: ends.filter((event) => event.rc === 0).length,
        deploysFailed: ends.filter((event) => event.rc !== 0).length,
        maxAtOnce: maxAtOnce([...byPid.values()]),
        newestDeployedDoneMs: newestOk ? newestOk.time - wallT0 : null,
        idleMs: Math.max(...ends.map((event) => event.time)) - wallT0,
      };
      break;
    }
  }
  await sleep(100);
}
clearInterval(watch);
for (const connection of connections) connection.socket?.destroy();

/** The most intervals [start, end] open at one time. */
function maxAtOnce(intervals) {
  const points = intervals.flatMap(([start, end]) => [[start, 1], [end, -1]]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, step] of points) {
    open += step;
    most = Math.max(most, open);
  }
  return most;
}

const finalHead = headOf(args.checkout);
const lastChange = headChanges.at(-1);
console.log(
  JSON.stringify({
    server: args.server,
    burst,
    pushes: count,
    sentInMs: Math.round(sentMs),
    acknowledged: statuses[accepted] ?? 0,
    allAcknowledged: (statuses[accepted] ?? 0) === count,
    statuses,
    ackP50Ms: percentile(latencies, 50),
    ackP99Ms: percentile(latencies, 99),
    fromWriteP50Ms: percentile(fromWrite, 50),
    fromWriteP99Ms: percentile(fromWrite, 99),
    mainWaitP99Ms: percentile(mainWait, 99),
    ackMaxMs: latencies.at(-1),
    allAckedMs: Math.round(ackedMs),
    // Seconds of CPU from the burst's start to the last reply: the server's process (all its
    // threads; not the deploys it started), deployhook's main thread, and this sender's own.
    serverCpuS: cpuSpent('server'),
    serverMainCpuS: cpuSpent('serverMain'),
    senderCpuS: cpuSpent('sender'),
    settled,
    ...report,
    finalHeadCommit: indexOf.get(finalHead) ?? -1,
    newestCommit: count,
    // When HEAD last became the newest commit (null when it did not end there), and how often it moved.
    headAtNewestMs: finalHead === newest && lastChange ? Math.round(lastChange.atMs) : null,
    headChanges: headChanges.length,
  }),
);
