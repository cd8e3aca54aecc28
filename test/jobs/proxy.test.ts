import { once } from 'node:events';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { startGitHttpServer } from '../helpers/git-http-server.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { waitForRun } from '../helpers/runs.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'proxy-test-secret-0123456789abcdef';
const USERNAME = 'deploy-bot';
const TOKEN = 'proxy-test-token-0123456789';
let hook: TestDaemon | undefined;
let proxy: Server | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
  proxy?.closeAllConnections();
  await new Promise((resolve) => proxy?.close(resolve) ?? resolve(undefined));
  proxy = undefined;
});

/** A forwarding HTTP proxy on loopback that notes the URL of every request it carries. */
async function startProxy(): Promise<{ url: string; carried: string[] }> {
  const carried: string[] = [];
  proxy = createServer((request, response) => {
    carried.push(request.url ?? '');
    const target = new URL(request.url ?? '');
    const upstream = httpRequest({ host: target.hostname, port: target.port, path: `${target.pathname}${target.search}`, method: request.method, headers: request.headers }, (answer) => {
      response.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', () => response.writeHead(502).end());
    request.pipe(upstream);
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, carried };
}

describe('a proxy set in the daemon’s environment', () => {
  it('carries git’s fetch, and the command sees it too; other variables of the daemon stay out', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'app.txt': 'through the proxy\n' });
    const server = await startGitHttpServer({ projectRoot: dir, username: USERNAME, token: TOKEN });
    const { url, carried } = await startProxy();
    const command = ['sh', '-c', 'echo "proxy=$http_proxy no_proxy=$no_proxy other=${OTHER_DAEMON_VARIABLE:-unset}"'];
    const job = { name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote: server.url('remote.git'), token_env: 'GIT_TOKEN', token_user: USERNAME, command };
    hook = await startDaemon(dir, { jobs: [job] }, { SECRET, GIT_TOKEN: TOKEN, http_proxy: url, no_proxy: 'internal.example', OTHER_DAEMON_VARIABLE: 'kept out' });

    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const reply = await hook.post('github', body, await githubHeaders(body, SECRET));
    const record = await waitForRun(join(dir, 'state'), 'app', (reply.json.runs as Array<{ id: string }>)[0]?.id ?? '');
    const log = await readFile(record.logPath, 'utf8');

    expect(record.status, log).toBe('succeeded');
    expect(carried).toContain(`${server.url('remote.git')}/info/refs?service=git-upload-pack`);
    expect(carried).toContain(`${server.url('remote.git')}/git-upload-pack`);
    expect(log).toContain(`proxy=${url} no_proxy=internal.example other=unset\n`);
  });
});
