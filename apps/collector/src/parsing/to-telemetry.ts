// The labels that become typed fields are shared with the streamer, which reads remote-written
// series the same way.
import {
  CONTAINER_LABELS,
  firstLabel as first,
  GPU_TYPED_LABELS as TYPED,
  gpuIdOf,
  HOSTNAME_LABELS as HOSTNAME,
  NAMESPACE_LABELS as NAMESPACE,
  POD_LABELS as POD,
  type TelemetrySample,
  toSampleValue,
} from '@gpu-telemetry/model';
import type { ExpositionSample } from './exposition-parser';
import { sampleId } from './sample-id';

/**
 * Turns one exposition sample into a TelemetrySample, or null when it is not about a GPU (no
 * UUID label, or one that is no GPU id). `scrapedAtMs` stamps samples that carry no timestamp of their own.
 */
export function toTelemetrySample(sample: ExpositionSample, scrapedAtMs: number): TelemetrySample | null {
  const gpuId = gpuIdOf(sample.labels);
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
    container: first(sample.labels, CONTAINER_LABELS),
    pod: first(sample.labels, POD),
    namespace: first(sample.labels, NAMESPACE),
    labels: rest,
  };
}
