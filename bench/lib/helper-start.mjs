// What one start through the process helper takes, from the request to the `started` line
// (the program has been exec'd) and to its `exited` line, beside node's own spawn() from this
// small process. The helper is the daemon's own script (read from
// src/runner/process-helper-script.ts), or a copy of it given as a file, to try a change to
// what its child does between fork and exec, or a commit's (`git:<commit>`, read with `git
// show`, to compare a build before a change). Each start is /bin/true, one at a time, with
// stdout and stderr on FIFOs as the daemon makes them and a 12-variable environment.
// Rounds alternate the ways; printed per way: the median of each round, in ms.
//
//   node bench/lib/helper-start.mjs [ROUNDS=4] [STARTS=300] [SCRIPT.pl | git:COMMIT ...]
//
// BENCH_GAP_MS=<ms> waits that long before each start, as a run's starts are spaced: a helper
// that does work of its own between starts (forks a child ahead of the next, say) is then not
// timed doing it, as it would be with the starts back to back.
import { execFileSync, spawn } from 'node:child_process';
import { constants, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [rounds = 4, starts = 300] = process.argv.slice(2, 4).map(Number);
const scripts = process.argv.slice(4);
const gapMs = Number(process.env.BENCH_GAP_MS ?? 0);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const helperSource = 'src/runner/process-helper-script.ts';
const source = readFileSync(join(root, helperSource), 'utf8');
/** The helper's script in a version of process-helper-script.ts, with the subroutines it shares with run-as-user.ts put in their place. */
function assembled(text) {
  const raw = (name) => new RegExp(`${name} = String\\.raw\`([\\s\\S]*?)\`;`).exec(text)?.[1];
  const userSubs = raw('PERL_USER_SUBS');
  return userSubs === undefined ? undefined : raw('HELPER_SCRIPT')?.replace('${PERL_USER_SUBS}', userSubs);
}
const shipped = assembled(source);
// The helper's second argument, as the daemon passes it.
const setPipeSize = /F_SETPIPE_SZ = (\d+);/.exec(source)?.[1];
if (!shipped || !setPipeSize) throw new Error('Expected HELPER_SCRIPT, PERL_USER_SUBS and F_SETPIPE_SZ in src/runner/process-helper-script.ts');

const folder = mkdtempSync(join(tmpdir(), 'helper-start-'));
process.on('exit', () => rmSync(folder, { recursive: true, force: true }));
const fifos = [join(folder, 'out'), join(folder, 'err')];
execFileSync('mkfifo', ['-m', '600', ...fifos]);
const ends = fifos.map((path) => ({ read: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK), write: openSync(path, constants.O_WRONLY) }));
const pipes = ends.map(({ write }) => fstatSync(write, { bigint: true })).map(({ dev, ino }) => `${dev}:${ino}`).join(':');
const env = { PATH: '/usr/bin:/bin', HOME: '/nonexistent', LANG: 'C.UTF-8', DEPLOYHOOK_JOB: 'app', DEPLOYHOOK_SHA: 'a'.repeat(40), DEPLOYHOOK_REF: 'refs/heads/main', A: '1', B: '2', C: '3', D: '4', E: '5', F: '6' };

/** Starts the helper from `script`; resolves with a function that starts /bin/true once and times it. */
async function helper(script) {
  const child = spawn('perl', ['-e', script, String(process.pid), setPipeSize], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  const waiting = [];
  let input = '';
  child.stdout.setEncoding('latin1');
  child.stdout.on('data', (chunk) => {
    const got = (input + chunk).split('\n');
    input = got.pop();
    for (const line of got) {
      // `forked` lines are not waited for: kept, they would slow every later search.
      if (line.startsWith('forked ')) continue;
      const at = waiting.findIndex(({ test }) => test(line));
      if (at === -1) lines.push(line);
      else waiting.splice(at, 1)[0].resolve(line);
    }
  });
  const wait = (test) =>
    new Promise((resolve) => {
      const at = lines.findIndex(test);
      if (at === -1) waiting.push({ test, resolve });
      else resolve(lines.splice(at, 1)[0]);
    });
  await wait((line) => line === 'ready');
  let id = 0;
  const once = async () => {
    id += 1;
    const body = Buffer.from([String(id), '/', '', '', String(ends[0].write), String(ends[1].write), pipes, '1', '/bin/true', ...Object.entries(env).map(([name, value]) => `${name}=${value}`)].join('\0'));
    const sent = performance.now();
    const started = wait((line) => line.startsWith(`started ${id} `) || line.startsWith(`failed ${id} `));
    child.stdin.write(Buffer.concat([Buffer.from(`${body.length}\n`), body]));
    const line = await started;
    if (!line.startsWith('started')) throw new Error(`the helper answered: ${line}`);
    const startedMs = performance.now() - sent;
    await wait((answer) => answer.startsWith(`exited ${line.split(' ')[2]} `));
    return [startedMs, performance.now() - sent];
  };
  once.close = () => child.stdin.end();
  return once;
}

/** node's spawn() of /bin/true as the daemon used it (detached, stdout and stderr on the FIFOs). */
async function nodeSpawn() {
  const sent = performance.now();
  let startedMs = 0;
  await new Promise((resolve, reject) => {
    const child = spawn('/bin/true', [], { detached: true, env, stdio: ['ignore', ends[0].write, ends[1].write] });
    child.once('spawn', () => (startedMs = performance.now() - sent));
    child.once('error', reject);
    child.once('exit', resolve);
  });
  return [startedMs, performance.now() - sent];
}

/** A script given as a file, or a commit's helper (`git:<commit>`). */
function scriptOf(given) {
  if (!given.startsWith('git:')) return readFileSync(given, 'utf8');
  const script = assembled(execFileSync('git', ['-C', root, 'show', `${given.slice(4)}:${helperSource}`], { encoding: 'utf8' }));
  if (script === undefined) throw new Error(`Expected HELPER_SCRIPT and PERL_USER_SUBS in ${helperSource} at ${given.slice(4)}`);
  return script;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const ways = [['helper (shipped)', await helper(shipped)], ...(await Promise.all(scripts.map(async (file) => [`helper (${file})`, await helper(scriptOf(file))]))), ['node spawn()', nodeSpawn]];
const results = new Map(ways.map(([name]) => [name, { started: [], exited: [] }]));
for (let round = 0; round < rounds; round += 1) {
  for (const [name, start] of round % 2 === 0 ? ways : [...ways].reverse()) {
    const started = [];
    const exited = [];
    for (let i = 0; i < starts; i += 1) {
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
      const [s, e] = await start();
      started.push(s);
      exited.push(e);
    }
    results.get(name).started.push(median(started));
    results.get(name).exited.push(median(exited));
  }
}
for (const [, start] of ways) start.close?.();
console.log(`| way | request to started, ms (median per round) | request to exited, ms |`);
console.log(`| --- | --- | --- |`);
const list = (values) => values.map((value) => value.toFixed(2)).join(', ');
for (const [name, { started, exited }] of results) console.log(`| ${name} | ${list(started)} | ${list(exited)} |`);
