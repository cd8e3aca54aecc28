import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type { Cidr } from '../config/cidr.js';

function blockListOf(networks: readonly Cidr[]): BlockList {
  const list = new BlockList();
  for (const network of networks) list.addSubnet(network.address, network.prefix, network.family);
  return list;
}

function contains(list: BlockList, address: string): boolean {
  const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  return list.check(address, family) || (mapped !== undefined && list.check(mapped, 'ipv4'));
}

export interface SourceFilter {
  /** The client's address: the peer, or behind a trusted proxy, the last untrusted X-Forwarded-For hop. */
  clientAddress(req: IncomingMessage): string;
  /** Whether `provider` may deliver from this request's client; true when the provider has no allow-list. */
  allows(provider: string, req: IncomingMessage): boolean;
}

/**
 * `allow_from` and `trust_proxy`. X-Forwarded-For is believed only from a trusted proxy,
 * and read from the right: the first address that is not itself a trusted proxy is the
 * client, so a client cannot choose its address by sending the header itself.
 */
export function createSourceFilter(allowFrom: Partial<Record<string, readonly Cidr[]>>, trustProxy: readonly Cidr[]): SourceFilter {
  const proxies = blockListOf(trustProxy);
  const allowed = new Map(Object.entries(allowFrom).filter((entry): entry is [string, readonly Cidr[]] => entry[1] !== undefined).map(([provider, networks]) => [provider, blockListOf(networks)]));
  const clientAddress = (req: IncomingMessage): string => {
    const peer = req.socket.remoteAddress ?? '';
    if (trustProxy.length === 0 || !contains(proxies, peer)) return peer;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').map((hop) => hop.trim()).filter((hop) => hop !== '');
    for (const hop of hops.reverse()) {
      if (isIP(hop) === 0) return '';
      if (!contains(proxies, hop)) return hop;
    }
    return peer;
  };
  return {
    clientAddress,
    allows(provider, req) {
      const list = allowed.get(provider);
      if (!list) return true;
      const client = clientAddress(req);
      return client !== '' && contains(list, client);
    },
  };
}
