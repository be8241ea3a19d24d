import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import { peerAddress, plainAddress } from '@gpu-telemetry/service-kit';

/** The address a request comes from, as the gateway counts it (rate limits, failed logins). */
export type ClientAddressOf = (req: Pick<IncomingMessage, 'headers' | 'socket'>) => string;

/** An IP address or CIDR block, e.g. `10.0.0.0/8`, `192.168.1.5`, `fd00::/8`. */
export function isAddressOrBlock(entry: string): boolean {
  const [address = '', prefix, ...more] = entry.split('/');
  const family = isIP(address);
  if (!family || more.length) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128);
}

/**
 * The client's address: the socket's peer, unless that peer is a trusted proxy (a load balancer or
 * ingress in front of the gateway); then the nearest address in X-Forwarded-For that is not a
 * trusted proxy. Entries further left are the client's own claims and are never believed.
 */
export function clientAddressOf(trustedProxies: readonly string[]): ClientAddressOf {
  if (trustedProxies.length === 0) return peerAddress;
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const [address = '', prefix] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) trusted.addAddress(address, type);
    else trusted.addSubnet(address, Number(prefix), type);
  }
  const isTrusted = (address: string) => {
    const family = isIP(address);
    return family !== 0 && trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
  return (req) => {
    let address = peerAddress(req);
    if (!isTrusted(address)) return address;
    const header = req.headers['x-forwarded-for'];
    const hops = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',').reverse();
    for (const hop of hops) {
      const candidate = plainAddress(hop);
      if (!isIP(candidate)) break; // garbage: the last proxy we trust is as far as we can see
      address = candidate;
      if (!isTrusted(candidate)) break;
    }
    return address;
  };
}

/**
 * What failures are counted against: an IPv4 address, or an IPv6 /64 (one host usually holds a
 * whole /64, so counting single IPv6 addresses would let it pick a fresh one per request).
 */
export function addressGroup(address: string): string {
  if (isIP(address) !== 6) return address;
  const bare = address.split('%')[0] ?? '';
  const count = (part: string) =>
    part ? part.split(':').reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0) : 0;
  const [head = '', tail] = bare.split('::');
  const groups = head ? head.split(':') : [];
  if (tail !== undefined) groups.push(...Array<string>(Math.max(0, 8 - count(head) - count(tail))).fill('0'));
  if (tail) groups.push(...tail.split(':'));
  return `${groups
    .slice(0, 4)
    .map((group) => parseInt(group, 16).toString(16))
    .join(':')}::/64`;
}
