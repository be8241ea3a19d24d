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
 * Whom a request came through, as far as the gateway can tell: the client first, then the trusted
 * proxies between, ending with the socket's peer.
 */
export interface Forwarding {
  readonly hops: readonly string[];
  /** The socket's peer is a trusted proxy: what it says of the request's way here is believed. */
  readonly fromTrustedProxy: boolean;
}
export type ForwardingOf = (req: Pick<IncomingMessage, 'headers' | 'socket'>) => Forwarding;

/**
 * The most X-Forwarded-For entries walked: no real chain of proxies is near as long, and a header
 * of thousands of addresses (a client inside a trusted block can send one) costs no more than this.
 */
export const MAX_FORWARDED_HOPS = 32;

/**
 * The hops of a request: the socket's peer, and when that is a trusted proxy (a load balancer or
 * ingress in front of the gateway) the addresses in X-Forwarded-For from the right, up to and
 * including the first that is not a trusted proxy: the client. Entries further left are the
 * client's own claims and are never believed; past MAX_FORWARDED_HOPS trusted ones, the last is
 * as far as the gateway looks. Walked once per request: the rate limiter, the failed-key throttle
 * and the forwarded headers all ask, and get the same answer.
 */
export function forwardingOf(trustedProxies: readonly string[]): ForwardingOf {
  if (trustedProxies.length === 0) return (req) => ({ hops: [peerAddress(req)], fromTrustedProxy: false });
  const trusted = blockListOf(trustedProxies);
  const isTrusted = (address: string) => {
    const family = isIP(address);
    return family !== 0 && trusted.check(address, family === 6 ? 'ipv6' : 'ipv4');
  };
  const walk = (req: Pick<IncomingMessage, 'headers' | 'socket'>): Forwarding => {
    const peer = peerAddress(req);
    if (!isTrusted(peer)) return { hops: [peer], fromTrustedProxy: false };
    const hops = [peer];
    const header = req.headers['x-forwarded-for'];
    const claimed = Array.isArray(header) ? header.join(',') : (header ?? '');
    // From the right, an entry at a time: the entries left of where the walk stops are never split.
    for (let end = claimed.length; end >= 0 && hops.length <= MAX_FORWARDED_HOPS;) {
      const start = end > 0 ? claimed.lastIndexOf(',', end - 1) : -1;
      const candidate = plainAddress(claimed.slice(start + 1, end));
      end = start;
      if (!isIP(candidate)) break; // garbage: the last proxy we trust is as far as we can see
      hops.push(candidate);
      if (!isTrusted(candidate)) break;
    }
    return { hops: hops.reverse(), fromTrustedProxy: true };
  };
  const walked = new WeakMap<object, Forwarding>();
  return (req) => {
    let forwarding = walked.get(req);
    if (!forwarding) {
      forwarding = walk(req);
      walked.set(req, forwarding);
    }
    return forwarding;
  };
}

/**
 * The client's address: the socket's peer, unless that peer is a trusted proxy; then the nearest
 * address in X-Forwarded-For that is not a trusted proxy (see forwardingOf, whose walk it shares).
 */
export function clientAddressOf(forwarding: ForwardingOf): ClientAddressOf {
  return (req) => forwarding(req).hops[0] ?? '';
}

/**
 * The entries that trust every IPv4 or every IPv6 address: `0.0.0.0/0`, `::/0`, any block of
 * prefix 0, or an IPv6 block holding `::ffff:0:0/96` (every IPv4 address, as mapped). From
 * anywhere, a client can then name its own address in X-Forwarded-For, and rate limits and
 * failed-authentication throttling count it by that.
 */
export function trustingEveryone(trustedProxies: readonly string[]): string[] {
  const ends = {
    ipv4: ['0.0.0.0', '255.255.255.255'],
    ipv6: ['::', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  } as const;
  return trustedProxies.filter((entry) => {
    // A block is one range of addresses: it holds all of a family when it holds both its ends.
    const block = blockListOf([entry]);
    return (['ipv4', 'ipv6'] as const).some((family) =>
      ends[family].every((address) => block.check(address, family)),
    );
  });
}

/** The addresses and blocks of GATEWAY_TRUSTED_PROXIES (checked by isAddressOrBlock). */
function blockListOf(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = '', prefix] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
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
