// Push to command: for each round and each server (order alternating), the server's bare
// repository gains one commit, a signed push for it is sent, and the time until the deploy
// command's first output line is taken. deploy.sh stamps that line itself ($EPOCHREALTIME,
// appended to the server's marks file), so polling does not blur the figure. The next push
// waits until the deploy has ended. Prints one JSON object per push.
//
//   node bench/lib/push-to-command.mjs --rounds 20 --commits FILE
//     --deployhook URL,BARE,MARKS,RUNS_DIR --webhook URL,BARE,MARKS,EVENTS
//     [--kept URL,BARE,MARKS,EVENTS] [--git-trace DIR] [--pause-ms 50]
// --kept is a second adnanh/webhook whose script keeps deployhook's promises (kept-deploy.sh);
// with it, each round pushes to the three in turn, the first of them changing every round.
// With --git-trace, DIR is where git writes trace2 events for deployhook's git (its HOME's
// .gitconfig says so): each deployhook push then also reports when its first git started,
// how long git itself ran, and when the last git ended. --pause-ms is the pause after each
// round: a longer one (7000) puts each push after a quiet spell of several seconds.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { examplePush, pushBody, signature } from './payload.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '20' },
    commits: { type: 'string' },
    deployhook: { type: 'string' },
    webhook: { type: 'string' },
    kept: { type: 'string' },
    'git-trace': { type: 'string' },
    'pause-ms': { type: 'string', default: '50' },
  },
});
const secret = process.env.BENCH_SECRET;
if (!args.commits || !args.deployhook || !args.webhook || !secret) {
  console.error('usage: push-to-command.mjs --rounds N --commits FILE --deployhook URL,BARE,MARKS,RUNS_DIR --webhook URL,BARE,MARKS,EVENTS');
  process.exit(2);
}
const rounds = Number(args.rounds);
const commits = readFileSync(args.commits, 'utf8').trim().split('\n');
if (commits.length < rounds + 1) throw new Error(`expected at least ${rounds + 1} commits`);
const servers = {
  deployhook: (([url, bare, marks, runsDir]) => ({ url: new URL(url), bare, marks, runsDir }))(args.deployhook.split(',')),
  webhook: scriptServer(args.webhook),
  ...(args.kept ? { kept: scriptServer(args.kept) } : {}),
};
function scriptServer(arg) {
  const [url, bare, marks, events] = arg.split(',');
  return { url: new URL(url), bare, marks, events };
}
const template = examplePush();
const agent = new http.Agent({ keepAlive: false });
// The wall clock, which deploy.sh's $EPOCHREALTIME and the daemon's log read, to a fraction of
// a millisecond: anchored at a tick of Date.now() before each push, then carried by the
// monotonic clock. performance.timeOrigin + performance.now() alone drifts from the wall clock
// while NTP slews it (5 ms a second on the benchmark host one evening, which added ~50 ms to
// every figure of both servers).
let anchor = { wall: Date.now(), mono: performance.now() };
function anchorWallClock() {
  const before = Date.now();
  let now = before;
  while (now === before) now = Date.now();
  anchor = { wall: now, mono: performance.now() };
}
const wallNowMs = () => anchor.wall + (performance.now() - anchor.mono);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function post(url, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const lineCount = (file) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

async function until(check, what, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

async function pushOnce(name, round) {
  const server = servers[name];
  const sha = commits[round];
  const body = pushBody(template, { repo: 'bench/app', ref: 'refs/heads/main', after: sha, before: commits[round - 1] });
  const headers = {
    'content-type': 'application/json',
    'content-length': String(body.length),
    'x-github-event': 'push',
    'x-github-hook-id': '42',
    'x-github-delivery': `p2c-${name}-${process.pid}-${round}`,
    'x-hub-signature-256': signature(secret, body),
  };
  const mainRef = join(server.bare, 'refs', 'heads', 'main');
  writeFileSync(`${mainRef}.bench-tmp`, `${sha}\n`);
  renameSync(`${mainRef}.bench-tmp`, mainRef);
  const marksBefore = lineCount(server.marks);
  anchorWallClock();
  const sent = wallNowMs();
  const reply = await post(server.url, body, headers);
  const ackMs = wallNowMs() - sent;
  const mark = await until(() => {
    if (!existsSync(server.marks) || statSync(server.marks).size === 0) return undefined;
    const lines = readFileSync(server.marks, 'utf8').split('\n').filter(Boolean);
    return lines.length > marksBefore ? lines[marksBefore] : undefined;
  }, `${name}'s first output line for round ${round}`);
  const firstLineMs = Number(mark.split(' ')[0]) * 1000 - sent;
  // Wait for the deploy to end before the next push.
  // Where the time went: deployhook's run record says when the run started (after the
  // reply's writes); the typical script logs its own start.
  let startedMs;
  if (name === 'deployhook') {
    const run = JSON.parse(reply.body).runs?.[0]?.id;
    const record = await until(() => {
      try {
        const parsed = JSON.parse(readFileSync(join(server.runsDir, `${run}.json`), 'utf8'));
        return parsed.status !== 'queued' && parsed.status !== 'running' ? parsed : undefined;
      } catch {
        return undefined;
      }
    }, `deployhook run ${run}`);
    startedMs = Date.parse(record.startedAt) - sent;
  } else {
    const end = await until(() => readFileSync(server.events, 'utf8').split('\n').find((line) => line.startsWith(`end ${sha} `)), `the script's end for ${sha}`);
    const pid = end.split(' ')[2];
    const start = readFileSync(server.events, 'utf8').split('\n').find((line) => line.startsWith(`start ${sha} ${pid} `));
    startedMs = Number(start?.split(' ')[3]) * 1000 - sent;
  }
  const git = name === 'deployhook' && args['git-trace'] ? gitTimes(args['git-trace'], sent) : {};
  return { server: name, round, status: reply.status, ackMs, startedMs, ...git, firstLineMs, mark: mark.split(' ').slice(1).join(' ') };
}

/** From trace2 event files: the git processes started since `sent` (ms), then the files are removed. */
function gitTimes(dir, sent) {
  const processes = [];
  for (const name of readdirSync(dir)) {
    const file = join(dir, name);
    const events = readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
    rmSync(file, { force: true });
    const start = events.find((event) => event.event === 'start');
    const end = events.find((event) => event.event === 'atexit') ?? events.find((event) => event.event === 'exit');
    // Top-level git processes only (a child's sid has a "/"), started after the push was sent.
    if (!start || !end || start.sid.includes('/') || Date.parse(start.time) < sent - 5) continue;
    processes.push({ start: Date.parse(start.time) - sent, end: Date.parse(end.time) - sent });
  }
  processes.sort((a, b) => a.start - b.start);
  if (processes.length === 0) return {};
  return {
    gits: processes.length,
    firstGitMs: processes[0].start,
    inGitMs: processes.reduce((sum, p) => sum + (p.end - p.start), 0),
    lastGitEndMs: processes.at(-1).end,
  };
}

const names = Object.keys(servers);
for (let round = 1; round <= rounds; round++) {
  const order = names.map((_, i) => names[(round + i) % names.length]);
  for (const name of order) console.log(JSON.stringify(await pushOnce(name, round)));
  await sleep(Number(args['pause-ms']));
}
