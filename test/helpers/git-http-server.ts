import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';

const HTTP_BACKEND = '/usr/lib/git-core/git-http-backend';

/** Git's smart HTTP protocol on loopback, behind HTTP Basic auth with one user and token. */
export interface GitHttpServer {
  port: number;
  /** `http://127.0.0.1:port/<path>`, for a path relative to the project root. */
  url(path: string): string;
  /** The Authorization header of every request, in order (undefined when absent). */
  authorizations: Array<string | undefined>;
}

export interface GitHttpServerOptions {
  /** Folder holding the bare repositories to serve. */
  projectRoot: string;
  username: string;
  token: string;
}

/** Serves `projectRoot` through `git http-backend` (as CGI) until the current test ends. */
export async function startGitHttpServer(options: GitHttpServerOptions): Promise<GitHttpServer> {
  const authorizations: Array<string | undefined> = [];
  const expected = `Basic ${Buffer.from(`${options.username}:${options.token}`).toString('base64')}`;
  const server = createServer((request, response) => {
    authorizations.push(request.headers.authorization);
    if (request.headers.authorization !== expected) {
      response.writeHead(401, { 'WWW-Authenticate': 'Basic realm="deployhook-test"' }).end('Unauthorized\n');
      return;
    }
    serveCgi(request, response, options);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push(server);
  const { port } = server.address() as AddressInfo;
  return { port, url: (path) => `http://127.0.0.1:${port}/${path}`, authorizations };
}

function serveCgi(request: IncomingMessage, response: ServerResponse, options: GitHttpServerOptions): void {
  const url = new URL(request.url ?? '/', 'http://127.0.0.1');
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    GIT_PROJECT_ROOT: options.projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.slice(1),
    REQUEST_METHOD: request.method ?? 'GET',
    CONTENT_TYPE: request.headers['content-type'] ?? '',
    REMOTE_USER: options.username,
    REMOTE_ADDR: '127.0.0.1',
  };
  const encoding = request.headers['content-encoding'];
  if (encoding !== undefined) env['HTTP_CONTENT_ENCODING'] = encoding;
  const protocol = request.headers['git-protocol'];
  if (typeof protocol === 'string') env['GIT_PROTOCOL'] = protocol;
  const length = request.headers['content-length'];
  if (length !== undefined) env['CONTENT_LENGTH'] = length;

  const child = spawn(HTTP_BACKEND, [], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  request.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  child.on('error', (error) => response.writeHead(500).end(String(error)));

  let head = Buffer.alloc(0);
  let headersSent = false;
  child.stdout.on('data', (chunk: Buffer) => {
    if (headersSent) {
      response.write(chunk);
      return;
    }
    head = Buffer.concat([head, chunk]);
    const split = headerEnd(head);
    if (split === undefined) return;
    writeCgiHead(response, head.subarray(0, split.start).toString('latin1'));
    headersSent = true;
    response.write(head.subarray(split.end));
  });
  child.stdout.on('end', () => {
    if (!headersSent) response.writeHead(502);
    response.end();
  });
}

function headerEnd(buffer: Buffer): { start: number; end: number } | undefined {
  const crlf = buffer.indexOf('\r\n\r\n');
  if (crlf !== -1) return { start: crlf, end: crlf + 4 };
  const lf = buffer.indexOf('\n\n');
  return lf === -1 ? undefined : { start: lf, end: lf + 2 };
}

/** CGI headers, with `Status: 404 Not Found` becoming the response status. */
function writeCgiHead(response: ServerResponse, block: string): void {
  let status = 200;
  for (const line of block.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
    else response.appendHeader(name, value);
  }
  response.writeHead(status);
}

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
