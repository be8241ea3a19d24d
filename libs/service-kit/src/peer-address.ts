import { isIP } from 'node:net';

/**
 * An address as a person reads it: `::ffff:10.0.0.1`, how a dual-stack socket (a service listening
 * on every address) shows an IPv4 peer, is 10.0.0.1; anything else is returned as it is, trimmed.
 */
export function plainAddress(address: string): string {
  const trimmed = address.trim();
  return trimmed.startsWith('::ffff:') && isIP(trimmed.slice(7)) === 4 ? trimmed.slice(7) : trimmed;
}

/** The plain address of a request's peer ('' when the socket has closed). */
export function peerAddress(req: { socket: { remoteAddress?: string } }): string {
  return plainAddress(req.socket.remoteAddress ?? '');
}
