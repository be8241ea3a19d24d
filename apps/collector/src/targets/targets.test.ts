import { ownerOf, ordinalFromHostname } from './ownership';
import { expandRanges, isBlockedAddress, parseTargetUrl } from './target-url';

const policy = { allowLinkLocal: false };

describe('target URLs', () => {
  it('accept http and https, normalised', () => {
    expect(parseTargetUrl('http://Node-7:9400/metrics#x', policy)).toBe('http://node-7:9400/metrics');
    expect(parseTargetUrl('https://10.0.0.5/metrics', policy)).toBe('https://10.0.0.5/metrics');
  });

  it.each([
    ['ftp://node/metrics', 'must use http or https'],
    ['file:///etc/passwd', 'must use http or https'],
    ['node-7:9400', 'must use http or https'],
    ['not a url', 'must be an absolute http:// or https:// URL'],
    ['http:///metrics', 'must name a host'],
    ['http:metrics', 'must name a host'],
    ['http://127.0.0.1:0/', 'must not use port 0'],
    ['http://user:secret@node/metrics', 'must not carry credentials'],
    ['http://169.254.169.254/latest/meta-data/', 'metadata or link-local'],
    ['http://metadata.google.internal/computeMetadata/v1/', 'metadata or link-local'],
    ['http://[fe80::1]/', 'metadata or link-local'],
    ['http://[::ffff:169.254.169.254]/', 'metadata or link-local'],
    ['http://[::a9fe:a9fe]/', 'metadata or link-local'],
    ['http://[64:ff9b::169.254.169.254]/', 'metadata or link-local'],
    ['http://[64:ff9b:1:0:0:0:a9fe:a9fe]/', 'metadata or link-local'],
    ['http://[0:0:0:0:0:ffff:6464:64c8]/', 'metadata or link-local'],
    ['http://100.100.100.200/latest/meta-data', 'metadata or link-local'],
  ])('refuse %s', (url, message) => {
    expect(() => parseTargetUrl(url, policy)).toThrow(message);
  });

  it('allow link-local only when the operator says so', () => {
    expect(parseTargetUrl('http://169.254.10.10:9400/metrics', { allowLinkLocal: true })).toBe(
      'http://169.254.10.10:9400/metrics',
    );
    expect(isBlockedAddress('10.0.0.1')).toBe(false);
    expect(isBlockedAddress('169.254.0.1')).toBe(true);
    // IPv6 addresses that carry an ordinary IPv4 address are as allowed as it is.
    expect(isBlockedAddress('64:ff9b::a00:1')).toBe(false);
    expect(isBlockedAddress('::ffff:10.0.0.1')).toBe(false);
    expect(isBlockedAddress('2001:db8::a9fe:a9fe')).toBe(false);
    expect(isBlockedAddress('::1')).toBe(false);
  });

  it('expand numeric ranges, keeping zero padding', () => {
    expect(expandRanges('http://gpu-{08..11}:9400/metrics')).toEqual([
      'http://gpu-08:9400/metrics',
      'http://gpu-09:9400/metrics',
      'http://gpu-10:9400/metrics',
      'http://gpu-11:9400/metrics',
    ]);
    expect(expandRanges('http://r{1..2}-n{1..2}/m')).toEqual([
      'http://r1-n1/m',
      'http://r1-n2/m',
      'http://r2-n1/m',
      'http://r2-n2/m',
    ]);
    expect(() => expandRanges('http://n{5..1}/m')).toThrow('empty or too large');
  });
});

describe('splitting targets between replicas', () => {
  const targets = Array.from({ length: 3000 }, (_, i) => `http://node-${i}:9400/metrics`);

  it('gives every target to exactly one replica, evenly', () => {
    const counts = [0, 0, 0, 0];
    for (const target of targets) counts[ownerOf(target, 4)]! += 1;
    expect(counts.reduce((a, b) => a + b, 0)).toBe(3000);
    for (const count of counts) expect(count).toBeGreaterThan(600);
  });

  it('moves only the targets of the new replica when scaling 4 -> 5', () => {
    const moved = targets.filter((t) => ownerOf(t, 4) !== ownerOf(t, 5));
    expect(moved.every((t) => ownerOf(t, 5) === 4)).toBe(true);
    expect(moved.length).toBeLessThan(3000 / 5 + 150);
  });

  it('reads the ordinal from a StatefulSet pod name', () => {
    expect(ordinalFromHostname('collector-2')).toBe(2);
    expect(ordinalFromHostname('gpu-telemetry-collector-11')).toBe(11);
    expect(ordinalFromHostname('laptop')).toBeUndefined();
  });
});
