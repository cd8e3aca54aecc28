// Start to first accepted request: starts a server, then sends a signed push every 2 ms
// until one is accepted (STATUS), and prints the milliseconds from just before the start.
// Then stops the server (SIGTERM) and waits for it. Prints one JSON object.
//
//   node bench/lib/startup.mjs --url URL --body FILE --signature SIG --status 202 -- COMMAND ARGS...
import { spawn } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    body: { type: 'string' },
    signature: { type: 'string' },
    status: { type: 'string', default: '202' },
    log: { type: 'string', default: '/dev/null' },
    'timeout-s': { type: 'string', default: '60' },
  },
});
if (!args.url || !args.body || !args.signature || positionals.length === 0) {
  console.error('usage: startup.mjs --url URL --body FILE --signature SIG [--status 202] -- COMMAND ARGS...');
  process.exit(2);
}
const url = new URL(args.url);
const body = readFileSync(args.body);
const expected = Number(args.status);
let attempt = 0;

function tryOnce() {
  attempt += 1;
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'x-github-event': 'push',
          'x-github-delivery': `startup-${process.pid}-${attempt}`,
          'x-hub-signature-256': args.signature,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

const log = openSync(args.log, 'a');
const started = performance.now();
const child = spawn(positionals[0], positionals.slice(1), { stdio: ['ignore', log, log] });
const exited = new Promise((resolve) => child.once('exit', resolve));
const deadline = started + Number(args['timeout-s']) * 1000;
let status = 0;
let firstAnswerMs = null;
while (performance.now() < deadline && child.exitCode === null) {
  status = await tryOnce();
  if (status !== 0 && firstAnswerMs === null) firstAnswerMs = performance.now() - started;
  if (status === expected) break;
  await new Promise((resolve) => setTimeout(resolve, 2));
}
const acceptedMs = status === expected ? performance.now() - started : null;
child.kill('SIGTERM');
const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
await exited;
clearTimeout(killer);
console.log(JSON.stringify({ acceptedMs, firstAnswerMs, status, attempts: attempt, pid: child.pid }));
