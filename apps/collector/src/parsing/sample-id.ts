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

/**
 * The id of one sample: the same GPU, metric, label set and time always give the same id, so a
 * retried publish or a redelivered message never stores a sample twice. MIG instances share their
 * parent's GPU UUID and differ in labels (GPU_I_ID), so labels are part of the identity.
 */
export function sampleId(
  gpuId: string,
  metricName: string,
  labels: Record<string, string>,
  timestampMs: number,
): string {
  const keys = Object.keys(labels).sort();
  let name = `${gpuId}\n${metricName}\n${timestampMs}`;
  for (const key of keys) name += `\n${key}=${labels[key]}`;
  return uuidV5(name);
}
