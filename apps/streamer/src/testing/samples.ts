import { randomUUID } from 'node:crypto';
import type { LeasedMessage, TelemetrySample } from '@gpu-telemetry/model';

let lastMs = 0;
/** Now, but never the same millisecond twice: samples of one series at one time are one sample. */
function distinctNow(): string {
  lastMs = Math.max(Date.now(), lastMs + 1);
  return new Date(lastMs).toISOString();
}

/** A valid sample; override what the test is about. */
export function sample(overrides: Partial<TelemetrySample> = {}): TelemetrySample {
  return {
    uuid: randomUUID(),
    gpuId: 'GPU-00000000-0000-0000-0000-000000000001',
    gpuIndex: 0,
    device: 'nvidia0',
    modelName: 'NVIDIA H100 80GB HBM3',
    hostname: 'node-1',
    metricName: 'DCGM_FI_DEV_GPU_UTIL',
    value: 50,
    timestamp: distinctNow(),
    container: null,
    pod: null,
    namespace: null,
    labels: { pci_bus_id: '00000000:18:00.0' },
    ...overrides,
  };
}

/** A leased message carrying `samples`, as the queue delivers it. */
export function message(samples: unknown[], source = 'http://node-1:9400/metrics'): LeasedMessage<unknown> {
  return {
    id: randomUUID(),
    payload: { source, samples },
    attempts: 1,
    publishedAt: new Date().toISOString(),
  };
}

/**
 * A leased message carrying `samples` as a frame (the collector's form: each group of GPU fields,
 * metric and time once), its payload then open to the test's changes.
 */
export function frameMessage(
  samples: TelemetrySample[],
  source = 'http://node-1:9400/metrics',
): LeasedMessage<{
  source: string;
  groups: unknown[];
  metrics: unknown[];
  times: unknown[];
  samples: unknown[];
}> {
  const groups: string[] = [];
  const metrics: string[] = [];
  const times: string[] = [];
  const indexIn = (list: string[], item: string) => {
    const i = list.indexOf(item);
    return i >= 0 ? i : list.push(item) - 1;
  };
  const rows = samples.map(({ uuid: _, metricName, timestamp, value, ...group }) => [
    indexIn(groups, JSON.stringify(group)),
    indexIn(metrics, metricName),
    indexIn(times, timestamp),
    value,
  ]);
  return {
    id: randomUUID(),
    payload: { source, groups: groups.map((g) => JSON.parse(g)), metrics, times, samples: rows },
    attempts: 1,
    publishedAt: new Date().toISOString(),
  };
}

/** A leased message carrying metric metadata, as a scrape or a remote write sends it. */
export function metadataMessage(
  metadata: unknown[],
  source = 'http://node-1:9400/metrics',
): LeasedMessage<unknown> {
  return {
    id: randomUUID(),
    payload: { source, metadata },
    attempts: 1,
    publishedAt: new Date().toISOString(),
  };
}
