import { peerAddress, plainAddress } from './peer-address';

describe('plainAddress', () => {
  it('reads an IPv4 peer of a dual-stack socket as IPv4, and leaves every other address as it is', () => {
    expect(plainAddress('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(plainAddress(' ::ffff:127.0.0.1 ')).toBe('127.0.0.1');
    expect(plainAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(plainAddress('::1')).toBe('::1');
    expect(plainAddress('fd00::ffff:10.0.0.1')).toBe('fd00::ffff:10.0.0.1');
    expect(plainAddress('::ffff:not-an-address')).toBe('::ffff:not-an-address');
    expect(plainAddress('')).toBe('');
  });

  it("reads a request's peer, or '' once its socket has none", () => {
    expect(peerAddress({ socket: { remoteAddress: '::ffff:192.0.2.7' } })).toBe('192.0.2.7');
    expect(peerAddress({ socket: {} })).toBe('');
  });
});
