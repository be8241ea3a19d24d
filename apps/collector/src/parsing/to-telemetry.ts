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
  type ScrapedSample,
  toSampleValue,
} from '@gpu-telemetry/model';
import type { ExpositionSample } from './exposition-parser';

/**
 * Turns one exposition sample into a ScrapedSample, or null when it is not about a GPU (no
 * UUID label, or one that is no GPU id). `scrapedAtMs` stamps samples that carry no timestamp of their own.
 */
export function toScrapedSample(sample: ExpositionSample, scrapedAtMs: number): ScrapedSample | null {
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
    gpuId,
    gpuIndex,
    device: first(sample.labels, ['device']),
    modelName: first(sample.labels, ['modelName']),
    hostname: first(sample.labels, HOSTNAME),
    metricName: sample.name,
    value: toSampleValue(sample.value),
    timestamp: isoTime(timestampMs),
    container: first(sample.labels, CONTAINER_LABELS),
    pod: first(sample.labels, POD),
    namespace: first(sample.labels, NAMESPACE),
    labels: rest,
  };
}

/** The last time written, and its RFC 3339 text: a scrape's samples share their time. */
let lastMs = Number.NaN;
let lastIso = '';

function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}
