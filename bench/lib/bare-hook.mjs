// The floor for any Node receiver: the least a webhook receiver on node:http does for a signed
// push, and nothing more. It reads the body, computes HMAC-SHA256 over it with BENCH_SECRET and
// compares it with X-Hub-Signature-256 in constant time, parses the JSON and checks the event
// and the ref. A push for another branch gets 200 (case (a)). A push for REF gets 202 at once,
// or, with a JOURNAL file, the case (b) floor: the body is appended to JOURNAL with O_DSYNC
// (pushes that arrive during a write go together in the next one) before the 202, and `true`
// runs for it, one at a time, pushes that arrive meanwhile coalesced into the next run. No log
// line, no metrics, no strict UTF-8 check, no size limit, no run records, no checkout.
// bench/ack-throughput.sh and bench/cpu-per-push.sh run it beside deployhook and adnanh/webhook,
// to show what one Node thread can do on the host. With BENCH_FLOOR_RUN, each run is that shell
// command (`sh -c`) instead of `true`: ack-throughput.sh's BENCH_FLOOR_GIT=1 makes it the git
// steps a deployhook run takes, in a checkout of its own, to see what the same processes cost
// a receiver that does nothing else.
//
//   BENCH_SECRET=... [BENCH_FLOOR_RUN='...'] node bench/lib/bare-hook.mjs PORT REF [JOURNAL]
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { constants, openSync, writev } from 'node:fs';
import http from 'node:http';

const [port, ref, journal] = process.argv.slice(2);
const secret = process.env.BENCH_SECRET;
if (!port || !ref || !secret) {
  console.error('usage: BENCH_SECRET=... bare-hook.mjs PORT REF [JOURNAL]');
  process.exit(2);
}

const fd = journal === undefined ? undefined : openSync(journal, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC, 0o600);
let waiting = [];
let writing = false;

/** Appends `record` durably; resolves once it is on disk, written together with the others that waited. */
function append(record) {
  return new Promise((resolve, reject) => {
    waiting.push({ record, resolve, reject });
    if (!writing) writeWaiting();
  });
}

function writeWaiting() {
  const batch = waiting;
  waiting = [];
  writing = true;
  writev(fd, batch.map(({ record }) => record), (error) => {
    for (const { resolve, reject } of batch) {
      if (error) reject(error);
      else resolve();
    }
    writing = false;
    if (waiting.length > 0) writeWaiting();
  });
}

let running = false;
let again = false;

const runCommand = process.env.BENCH_FLOOR_RUN;

/** Runs `true` (or BENCH_FLOOR_RUN), one at a time; a push during a run makes one more run after it. */
function deploy() {
  if (running) {
    again = true;
    return;
  }
  running = true;
  const run = runCommand ? spawn('sh', ['-c', runCommand], { stdio: 'ignore' }) : spawn('true', { stdio: 'ignore' });
  run.on('exit', () => {
    running = false;
    if (again) {
      again = false;
      deploy();
    }
  });
}

function answer(req, body) {
  const given = Buffer.from(String(req.headers['x-hub-signature-256'] ?? ''));
  const expected = Buffer.from(`sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return [401, { error: 'signature verification failed' }];
  let payload;
  try {
    payload = JSON.parse(body.toString('utf8'));
  } catch {
    return [400, { error: 'expected JSON' }];
  }
  if (req.headers['x-github-event'] !== 'push' || payload.ref !== ref) return [200, { runs: [], reason: `nothing deploys ${String(payload.ref)}` }];
  return [202, { runs: [] }];
}

/** The answer, once the push is on disk and its run asked for when there is a JOURNAL. */
async function settle(req, body) {
  const [status, reply] = answer(req, body);
  if (status !== 202 || fd === undefined) return [status, reply];
  await append(Buffer.concat([body, Buffer.from('\n')]));
  deploy();
  return [status, reply];
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      const [status, reply] = await settle(req, Buffer.concat(chunks)).catch(() => [503, { error: 'could not record the push' }]);
      const text = JSON.stringify({ delivery: req.headers['x-github-delivery'], ...reply });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  })
  .listen(Number(port), '127.0.0.1');

// Stopped like the daemons (SIGTERM): exit normally, so that `--cpu-prof` writes its profile.
process.on('SIGTERM', () => process.exit(0));
