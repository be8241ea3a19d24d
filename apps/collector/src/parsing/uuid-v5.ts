import { createHash } from 'node:crypto';

/** Namespace of every id this collector derives (RFC 9562 v5: SHA-1 of namespace and name). */
const NAMESPACE = Buffer.from('6f1a7c1e9b2d4f0aa3c85e7d21b4c9f0', 'hex');

export function uuidV5(name: string, namespace: Buffer = NAMESPACE): string {
  const hash = createHash('sha1').update(namespace).update(name).digest();
  hash[6] = ((hash[6] as number) & 0x0f) | 0x50;
  hash[8] = ((hash[8] as number) & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
