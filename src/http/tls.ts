import { readFile } from 'node:fs/promises';
import type { TlsOptions } from 'node:tls';
import type { TlsFiles } from '../config/types.js';
import { DeployhookError } from '../errors.js';

/**
 * Reads the certificate, key and (for mutual TLS) client CA. With a client CA, a client
 * must present a certificate it signed, or the handshake fails before any HTTP is read.
 */
export async function readTlsOptions(files: TlsFiles): Promise<TlsOptions> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new DeployhookError('TLS_FILE_UNREADABLE', `Expected a readable ${what} at ${path}, got ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause });
    }
  };
  const options: TlsOptions = { cert: await read(files.cert, 'certificate'), key: await read(files.key, 'private key'), minVersion: 'TLSv1.2' };
  if (files.clientCa !== undefined) {
    options.ca = await read(files.clientCa, 'client CA certificate');
    options.requestCert = true;
    options.rejectUnauthorized = true;
  }
  return options;
}
