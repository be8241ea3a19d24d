import type { IncomingMessage } from 'node:http';
import {
  addressGroup,
  clientAddressOf,
  forwardingOf,
  isAddressOrBlock,
  MAX_FORWARDED_HOPS,
  trustingEveryone,
} from './client-address';

const from = (peer: string, forwardedFor?: string) =>
  ({
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
  }) as unknown as IncomingMessage;

describe('clientAddressOf', () => {
  it('is the peer when no proxy is trusted, whatever X-Forwarded-For claims', () => {
    expect(clientAddressOf(forwardingOf([]))(from('203.0.113.5', '198.51.100.1'))).toBe('203.0.113.5');
    expect(clientAddressOf(forwardingOf([]))(from('::ffff:203.0.113.5'))).toBe('203.0.113.5');
  });

  it('walks X-Forwarded-For from the right past trusted proxies, and believes nothing further left', () => {
    const of = clientAddressOf(forwardingOf(['10.0.0.0/8', 'fd00::/8']));
    expect(of(from('10.1.2.3', '198.51.100.1, 203.0.113.9'))).toBe('203.0.113.9');
    expect(of(from('10.1.2.3', '198.51.100.1, 203.0.113.9, 10.9.9.9'))).toBe('203.0.113.9');
    expect(of(from('::ffff:10.1.2.3', '2001:db8::7'))).toBe('2001:db8::7');
    expect(of(from('fd00::1', '203.0.113.9'))).toBe('203.0.113.9');
    // Not from a trusted proxy: the header is the client's own claim.
    expect(of(from('203.0.113.50', '10.0.0.1'))).toBe('203.0.113.50');
    // Garbage stops the walk at the last trusted hop.
    expect(of(from('10.1.2.3', '203.0.113.9, not-an-ip'))).toBe('10.1.2.3');
    expect(of(from('10.1.2.3'))).toBe('10.1.2.3');
  });
});

describe('forwardingOf', () => {
  it('is the peer alone when it is no trusted proxy: what it claims is dropped', () => {
    expect(forwardingOf([])(from('203.0.113.5', '198.51.100.1'))).toEqual({
      hops: ['203.0.113.5'],
      fromTrustedProxy: false,
    });
    expect(forwardingOf(['10.0.0.0/8'])(from('::ffff:203.0.113.5', '10.0.0.1'))).toEqual({
      hops: ['203.0.113.5'],
      fromTrustedProxy: false,
    });
  });

  it('is the client and the trusted proxies it came through, ending with the peer', () => {
    const of = forwardingOf(['10.0.0.0/8', 'fd00::/8']);
    expect(of(from('10.1.2.3', 'forged, 198.51.100.1, 203.0.113.9, 10.9.9.9'))).toEqual({
      hops: ['203.0.113.9', '10.9.9.9', '10.1.2.3'],
      fromTrustedProxy: true,
    });
    expect(of(from('fd00::1', ' ::ffff:203.0.113.9 '))).toEqual({
      hops: ['203.0.113.9', 'fd00::1'],
      fromTrustedProxy: true,
    });
    // Garbage stops the walk at the last trusted hop; no header, the trusted peer alone.
    expect(of(from('10.1.2.3', '203.0.113.9, not-an-ip, 10.0.0.7')).hops).toEqual(['10.0.0.7', '10.1.2.3']);
    expect(of(from('10.1.2.3'))).toEqual({ hops: ['10.1.2.3'], fromTrustedProxy: true });
    expect(of(from('10.1.2.3', ''))).toEqual({ hops: ['10.1.2.3'], fromTrustedProxy: true });
    expect(of(from('10.1.2.3', ',203.0.113.9,,10.0.0.7')).hops).toEqual(['10.0.0.7', '10.1.2.3']);
  });

  it('walks X-Forwarded-For once per request, however often the request is asked about', () => {
    const forwarding = forwardingOf(['10.0.0.0/8']);
    const clientAddress = clientAddressOf(forwarding);
    let reads = 0;
    const counted = () => {
      const req = from('10.1.2.3');
      Object.defineProperty(req.headers, 'x-forwarded-for', {
        get: () => {
          reads++;
          return '198.51.100.1, 203.0.113.9, 10.9.9.9';
        },
      });
      return req;
    };
    const first = counted();
    // As a proxied request is asked: the rate limit, the failed-key throttle, the forwarded headers.
    expect(clientAddress(first)).toBe('203.0.113.9');
    expect(clientAddress(first)).toBe('203.0.113.9');
    expect(forwarding(first).hops).toEqual(['203.0.113.9', '10.9.9.9', '10.1.2.3']);
    expect(reads).toBe(1);
    // Another request is walked on its own.
    expect(clientAddress(counted())).toBe('203.0.113.9');
    expect(reads).toBe(2);
  });

  it('walks at most MAX_FORWARDED_HOPS entries of a header thousands of addresses long', () => {
    const of = forwardingOf(['10.0.0.0/8']);
    const claimed = Array.from(
      { length: 5_000 },
      (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    );
    const { hops } = of(from('10.1.2.3', ['203.0.113.9', ...claimed].join(', ')));
    expect(hops).toHaveLength(MAX_FORWARDED_HOPS + 1);
    // The furthest trusted hop walked stands for the client, as when garbage stops the walk.
    expect(hops).toEqual([...claimed.slice(-MAX_FORWARDED_HOPS), '10.1.2.3']);
    // A chain within the bound is walked to its client, as before.
    expect(
      of(from('10.1.2.3', ['203.0.113.9', ...claimed.slice(-(MAX_FORWARDED_HOPS - 1))].join(', '))).hops[0],
    ).toBe('203.0.113.9');
  });
});

describe('trustingEveryone', () => {
  it('names the entries that trust every address of a family', () => {
    expect(
      trustingEveryone(['10.0.0.0/8', '0.0.0.0/0', '::/0', '192.0.2.1/0', '::ffff:0:0/96', 'fd00::1/0']),
    ).toEqual(['0.0.0.0/0', '::/0', '192.0.2.1/0', '::ffff:0:0/96', 'fd00::1/0']);
    // ::/1 holds ::ffff:0:0/96, every IPv4 client as the dual-stack socket sees it.
    expect(trustingEveryone(['::/1'])).toEqual(['::/1']);
    expect(trustingEveryone(['10.0.0.0/8', '0.0.0.0/1', '::1', '127.0.0.1', 'fd00::/8', '8000::/1'])).toEqual(
      [],
    );
  });
});

describe('addressGroup', () => {
  it('keeps IPv4 addresses and counts IPv6 by /64', () => {
    expect(addressGroup('203.0.113.5')).toBe('203.0.113.5');
    expect(addressGroup('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:0db8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressGroup('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });
});

describe('isAddressOrBlock', () => {
  it('takes addresses and CIDR blocks, nothing else', () => {
    for (const ok of ['10.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', '0.0.0.0/0'])
      expect(isAddressOrBlock(ok)).toBe(true);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'host', '10.0.0.0/8/1', '10.0.0.0/x', '']) {
      expect(isAddressOrBlock(bad)).toBe(false);
    }
  });
});
