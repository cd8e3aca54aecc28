import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';

/** A loopback port that was free a moment ago: a server started on it may still lose the race. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Whether process `pid` holds an established TCP connection to `port` on loopback (IPv4):
 * read from /proc, so a client can be known to be connected before a test goes on.
 */
export async function connectedTo(pid: number, port: number): Promise<boolean> {
  const links = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const sockets = new Set<string>();
  for (const fd of links) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    if (inode) sockets.add(inode);
  }
  const table = await readFile('/proc/net/tcp', 'utf8');
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return table
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .some((fields) => fields[2] === remote && fields[3] === '01' && sockets.has(fields[9] ?? ''));
}
