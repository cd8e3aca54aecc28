// The floor for any Node receiver of case (a): the least a webhook receiver on node:http does
// for a signed push no job wants, and nothing more. It reads the body, computes HMAC-SHA256
// over it with BENCH_SECRET and compares it with X-Hub-Signature-256 in constant time, parses
// the JSON and checks the event and the ref. Then it answers 200 (another branch) or 202 (this
// branch) with a small JSON body. No log line, no metrics, no strict UTF-8 check, no size
// limit, no record. bench/ack-throughput.sh and bench/cpu-per-push.sh run it beside deployhook
// and adnanh/webhook, to show what one Node thread can do on the host.
//
//   BENCH_SECRET=... node bench/lib/bare-hook.mjs PORT REF
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const [port, ref] = process.argv.slice(2);
const secret = process.env.BENCH_SECRET;
if (!port || !ref || !secret) {
  console.error('usage: BENCH_SECRET=... bare-hook.mjs PORT REF');
  process.exit(2);
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

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const [status, reply] = answer(req, Buffer.concat(chunks));
      const text = JSON.stringify({ delivery: req.headers['x-github-delivery'], ...reply });
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  })
  .listen(Number(port), '127.0.0.1');

// Stopped like the daemons (SIGTERM): exit normally, so that `--cpu-prof` writes its profile.
process.on('SIGTERM', () => process.exit(0));
