import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { copyFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../helpers/certs.js';
import { startDaemon, type TestDaemon } from '../helpers/daemon.js';
import { createRemote } from '../helpers/git-repo.js';
import { githubHeaders, githubPush } from '../helpers/payloads.js';
import { tempDir } from '../helpers/tmp.js';

const SECRET = 'transport-secret-0123456789abcdef';
let hook: TestDaemon | undefined;

afterEach(async () => {
  await hook?.stop();
  hook = undefined;
});

const job = (remote: string) => ({ name: 'app', provider: 'github', repo: 'acme/app', branches: ['main'], secret_env: 'SECRET', remote, command: ['true'] });

interface TlsClient {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

/** A signed push over HTTPS; resolves with the status, or with the TLS error's code. */
async function httpsPush(port: number, client: TlsClient, sha: string): Promise<number | string> {
  const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
  const headers = await githubHeaders(body, SECRET);
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/hooks/github', method: 'POST', headers, ...client }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end(body);
  });
}

describe('HTTPS and mutual TLS', () => {
  let pki: Pki;

  async function start(dir: string, tls: Record<string, string>): Promise<string> {
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { tls, jobs: [job(remote.bare)] }, { SECRET });
    return sha;
  }

  it('serves webhooks over HTTPS with the configured certificate', async () => {
    const dir = await tempDir();
    pki = await makePki(dir);
    const sha = await start(dir, { cert: pki.serverCert, key: pki.serverKey });
    const port = Number(new URL(hook?.url ?? '').port);
    expect(await httpsPush(port, { ca: await pki.read(pki.ca) }, sha)).toBe(202);
  });

  it('with client_ca, refuses a client without a certificate or with one from another CA, and serves the right one', async () => {
    const dir = await tempDir();
    pki = await makePki(dir);
    const sha = await start(dir, { cert: pki.serverCert, key: pki.serverKey, client_ca: pki.ca });
    const port = Number(new URL(hook?.url ?? '').port);
    const ca = await pki.read(pki.ca);

    const anonymous = await httpsPush(port, { ca }, sha);
    expect(anonymous).not.toBe(202);
    expect(typeof anonymous).toBe('string');
    const stranger = await httpsPush(port, { ca, cert: await pki.read(pki.strangerCert), key: await pki.read(pki.strangerKey) }, sha);
    expect(stranger).not.toBe(202);
    expect(typeof stranger).toBe('string');
    expect(await httpsPush(port, { ca, cert: await pki.read(pki.clientCert), key: await pki.read(pki.clientKey) }, sha)).toBe(202);
    expect(hook?.logLines.some((line) => line.includes('TLS handshake refused'))).toBe(true);
  });

  it('re-reads the certificate on reload', async () => {
    const dir = await tempDir();
    pki = await makePki(dir);
    const sha = await start(dir, { cert: pki.serverCert, key: pki.serverKey });
    const port = Number(new URL(hook?.url ?? '').port);
    const renewed = await makePki(await tempDir());
    await copyFile(renewed.serverCert, pki.serverCert);
    await copyFile(renewed.serverKey, pki.serverKey);
    // Still the old certificate until the reload.
    expect(await httpsPush(port, { ca: await renewed.read(renewed.ca) }, sha)).not.toBe(202);
    await hook?.daemon.reload();
    expect(await httpsPush(port, { ca: await renewed.read(renewed.ca) }, sha)).toBe(202);
  });
});

describe('allow_from and trust_proxy', () => {
  it('answers 403 before reading the body to a delivery from outside the allowed networks', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    await remote.commit({ 'a.txt': 'a\n' });
    hook = await startDaemon(dir, { allow_from: { github: ['192.0.2.0/24'] }, jobs: [job(remote.bare)] }, { SECRET });
    const port = Number(new URL(hook.url).port);
    // Headers only, with a body declared but never sent: the reply must not wait for it.
    const status = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(`POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Hub-Signature-256: sha256=${'0'.repeat(64)}\r\nContent-Length: 1000\r\n\r\n`);
      });
      let text = '';
      socket.on('data', (chunk) => {
        text += chunk.toString();
        if (text.includes('\r\n\r\n')) {
          resolve(text.split('\r\n')[0] ?? '');
          socket.destroy();
        }
      });
      socket.on('error', reject);
    });
    expect(status).toBe('HTTP/1.1 403 Forbidden');
  });

  it('believes X-Forwarded-For only from a trusted proxy, reading it from the right', async () => {
    const dir = await tempDir();
    const remote = await createRemote(dir);
    const sha = await remote.commit({ 'a.txt': 'a\n' });
    const settings = { allow_from: { github: ['192.0.2.0/24'] }, jobs: [job(remote.bare)] };
    const body = JSON.stringify(githubPush({ repo: 'acme/app', after: sha }));
    const headers = await githubHeaders(body, SECRET);

    hook = await startDaemon(dir, settings, { SECRET });
    expect((await hook.post('github', body, { ...headers, 'x-forwarded-for': '192.0.2.10' })).status).toBe(403);
    await hook.stop();

    hook = await startDaemon(dir, { ...settings, trust_proxy: ['127.0.0.1/32'] }, { SECRET });
    expect((await hook.post('github', body, { ...headers, 'x-forwarded-for': '192.0.2.10' })).status).toBe(202);
    // A client that forges the header in front of the proxy's own entry gains nothing.
    expect((await hook.post('github', body, { ...headers, 'x-forwarded-for': '192.0.2.10, 198.51.100.7' })).status).toBe(403);
    expect((await hook.post('github', body, { ...headers, 'x-forwarded-for': 'garbage' })).status).toBe(403);
  });
});
