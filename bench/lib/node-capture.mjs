// The floor for any Node program that keeps a command's output: spawns `bash -c SCRIPT` and
// writes its stdout and stderr to FILE through a WriteStream (1 MiB buffer), nothing else: no
// masking, no cap, no HTTP. bench/log-capture.sh runs it beside deployhook and the redirect.
//
//   node bench/lib/node-capture.mjs FILE SCRIPT     (the script's environment is this one's)
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';

const [file, script] = process.argv.slice(2);
if (!file || !script) {
  console.error('usage: node-capture.mjs FILE SCRIPT');
  process.exit(2);
}
const out = createWriteStream(file, { highWaterMark: 1024 * 1024 });
const child = spawn('bash', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
child.stdout.pipe(out, { end: false });
child.stderr.pipe(out, { end: false });
await Promise.all([finished(child.stdout), finished(child.stderr)]);
out.end();
await finished(out);
