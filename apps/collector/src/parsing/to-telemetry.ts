import { type TelemetrySample, toSampleValue } from '@gpu-telemetry/model';
import type { ExpositionSample } from './exposition-parser';
import { sampleId } from './sample-id';

// Labels that become typed fields; both the current and the older exporter spellings.
const GPU_ID = ['UUID', 'uuid'];
const HOSTNAME = ['Hostname', 'hostname'];
const CONTAINER = ['container', 'container_name'];
const POD = ['pod', 'pod_name'];
const NAMESPACE = ['namespace', 'pod_namespace'];
const TYPED = new Set([
  ...GPU_ID,
  ...HOSTNAME,
  ...CONTAINER,
  ...POD,
  ...NAMESPACE,
  'gpu',
  'device',
  'modelName',
]);

function first(labels: Record<string, string>, names: string[]): string | null {
  for (const name of names) {
    const value = labels[name];
    if (value !== undefined && value !== '') return value;
  }
  return null;
}

/**
 * Turns one exposition sample into a TelemetrySample, or null when it is not about a GPU (no
 * UUID label). `scrapedAtMs` stamps samples that carry no timestamp of their own.
 */
export function toTelemetrySample(sample: ExpositionSample, scrapedAtMs: number): TelemetrySample | null {
  const gpuId = first(sample.labels, GPU_ID);
  if (gpuId === null) return null;
  const timestampMs = sample.timestampMs ?? scrapedAtMs;
  const rest: Record<string, string> = {};
  for (const key in sample.labels) {
    if (!TYPED.has(key)) rest[key] = sample.labels[key] as string;
  }
  const gpu = sample.labels['gpu'];
  const gpuIndex = gpu !== undefined && /^\d{1,5}$/.test(gpu) ? Number(gpu) : null;
  return {
    uuid: sampleId(gpuId, sample.name, sample.labels, timestampMs),
    gpuId,
    gpuIndex,
    device: first(sample.labels, ['device']),
    modelName: first(sample.labels, ['modelName']),
    hostname: first(sample.labels, HOSTNAME),
    metricName: sample.name,
    value: toSampleValue(sample.value),
    timestamp: new Date(timestampMs).toISOString(),
    container: first(sample.labels, CONTAINER),
    pod: first(sample.labels, POD),
    namespace: first(sample.labels, NAMESPACE),
    labels: rest,
  };
}
