import { isIP } from 'node:net';
import { ValidationError } from '@gpu-telemetry/model';

/**
 * Where a scrape may go. Only http(s); never cloud metadata services or link-local addresses
 * (where those services live) unless the operator allows it: a target URL is user input, and a
 * collector that fetches whatever it is told is an SSRF hole into the cluster's credentials.
 */
export interface TargetPolicy {
  allowLinkLocal: boolean;
}

const METADATA_HOSTS = new Set([
  'metadata',
  'metadata.google.internal',
  'metadata.goog',
  'instance-data',
  'instance-data.ec2.internal',
]);

/** Link-local IPv4 (169.254/16, incl. 169.254.169.254), Alibaba's metadata IP, IPv6 link-local and AWS IMDS v6. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) {
    const [a, b] = address.split('.').map(Number);
    return (a === 169 && b === 254) || address === '100.100.100.200';
  }
  if (family === 6) {
    const lower = address.toLowerCase();
    // An IPv4 address carried in an IPv6 one reaches the same host: IPv4-mapped (::ffff:a9fe:a9fe
    // is 169.254.169.254), IPv4-compatible (::a9fe:a9fe) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48).
    const groups = ipv6Groups(lower);
    if (groups) {
      const hex = groups.map((g) => g.toString(16));
      const prefix = hex.slice(0, 6).join(':');
      if (
        prefix === '0:0:0:0:0:ffff' ||
        prefix === '0:0:0:0:0:0' ||
        prefix === '64:ff9b:0:0:0:0' ||
        hex.slice(0, 3).join(':') === '64:ff9b:1'
      ) {
        const high = groups[6] as number;
        const low = groups[7] as number;
        if (isBlockedAddress(`${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`)) return true;
      }
    }
    return /^fe[89ab][0-9a-f]:/.test(lower) || lower === 'fd00:ec2::254';
  }
  return false;
}

/** The eight 16-bit groups of an IPv6 address (`isIP` says it is one), as hex numbers' values. */
function ipv6Groups(address: string): number[] | undefined {
  let text = address.split('%')[0] as string;
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = part(head);
  const right = part(tail);
  const groups =
    tail === undefined
      ? left
      : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff)
    ? groups
    : undefined;
}

/** The longest target URL, as stored (percent-encoded). */
export const MAX_TARGET_URL = 2048;

/** Normalises and checks a target URL; throws a 400 naming `field` when it is not allowed. */
export function parseTargetUrl(input: string, policy: TargetPolicy, field = 'url'): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new ValidationError([{ field, message: 'must be an absolute http:// or https:// URL' }]);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError([
      { field, message: `must use http or https, not ${url.protocol.replace(':', '')}` },
    ]);
  }
  // A URL parser reads `http:///metrics` or `http:metrics` as the host "metrics": refused, as
  // surely a mistake; so is port 0, which nothing listens on.
  if (!/^https?:\/\/[^/?#\\]/i.test(input.trim())) {
    throw new ValidationError([{ field, message: 'must name a host: http://host[:port]/path' }]);
  }
  if (url.port === '0') {
    throw new ValidationError([{ field, message: 'must not use port 0' }]);
  }
  if (url.username || url.password) {
    throw new ValidationError([{ field, message: 'must not carry credentials' }]);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (!policy.allowLinkLocal && (METADATA_HOSTS.has(host) || isBlockedAddress(host))) {
    throw new ValidationError([
      {
        field,
        message:
          'points at a cloud metadata or link-local address, which is not allowed (COLLECT_ALLOW_LINK_LOCAL)',
      },
    ]);
  }
  url.hash = '';
  const normalised = url.toString();
  // Percent-encoding can make a URL up to 9 times longer than it was typed (one CJK character
  // becomes three escaped bytes); the stored form is what must fit.
  if (normalised.length > MAX_TARGET_URL)
    throw new ValidationError([
      { field, message: `must be at most ${MAX_TARGET_URL} characters once percent-encoded` },
    ]);
  return normalised;
}

/**
 * Expands numeric ranges in braces, so a fleet fits in one variable:
 * `http://gpu-{01..04}:9400/metrics` -> gpu-01 ... gpu-04 (zero padding kept).
 */
export function expandRanges(pattern: string, limit = 100_000): string[] {
  const match = /\{(\d+)\.\.(\d+)\}/.exec(pattern);
  if (!match) return [pattern];
  const [whole, fromText, toText] = match as unknown as [string, string, string];
  const from = Number(fromText);
  const to = Number(toText);
  const width = fromText.startsWith('0') ? fromText.length : 0;
  if (to < from || to - from >= limit) throw new Error(`range ${whole} in ${pattern} is empty or too large`);
  const out: string[] = [];
  for (let n = from; n <= to; n++) {
    const expanded =
      pattern.slice(0, match.index) +
      String(n).padStart(width, '0') +
      pattern.slice(match.index + whole.length);
    out.push(...expandRanges(expanded, limit));
  }
  return out;
}
