import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  await execFileAsync('openssl', args, { cwd });
}

export interface Pki {
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate signed by `ca`. */
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by another CA. */
  strangerCert: string;
  strangerKey: string;
  read(path: string): Promise<Buffer>;
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.pem`);
}

async function issue(dir: string, ca: string, name: string, extensions: string): Promise<void> {
  await openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
}

/** A throwaway PKI made with openssl: a CA, a server certificate for 127.0.0.1, and client certificates. */
export async function makePki(dir: string): Promise<Pki> {
  await makeCa(dir, 'ca');
  await makeCa(dir, 'other-ca');
  await issue(dir, 'ca', 'server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await issue(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n');
  await issue(dir, 'other-ca', 'stranger', 'extendedKeyUsage=clientAuth\n');
  const path = (name: string) => join(dir, name);
  return {
    ca: path('ca.pem'),
    serverCert: path('server.pem'),
    serverKey: path('server.key'),
    clientCert: path('client.pem'),
    clientKey: path('client.key'),
    strangerCert: path('stranger.pem'),
    strangerKey: path('stranger.key'),
    read: (file) => readFile(file),
  };
}
