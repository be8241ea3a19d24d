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

/** A frame's payload, open to a test's changes. */
export interface FramePayload {
  source: string;
  groups: unknown[];
  metrics: unknown[];
  times: unknown[];
  rows?: unknown[][];
  samples?: unknown[];
}

/**
 * A leased message carrying `samples` as a frame: each group of GPU fields, metric and time once,
 * and the samples as `rows` (the collector's form: a group's values at a time, one per metric,
 * null where it has none) or, with `form` 'samples', as `[group, metric, time, value]`.
 */
export function frameMessage(
  samples: TelemetrySample[],
  source = 'http://node-1:9400/metrics',
  form: 'rows' | 'samples' = 'rows',
): LeasedMessage<FramePayload> {
  const groups: string[] = [];
  const metrics: string[] = [];
  const times: string[] = [];
  const indexIn = (list: string[], item: string) => {
    const i = list.indexOf(item);
    return i >= 0 ? i : list.push(item) - 1;
  };
  const cells = samples.map(({ uuid: _, metricName, timestamp, value, ...group }) => [
    indexIn(groups, JSON.stringify(group)),
    indexIn(metrics, metricName),
    indexIn(times, timestamp),
    value,
  ]);
  const payload: FramePayload = { source, groups: groups.map((g) => JSON.parse(g)), metrics, times };
  if (form === 'samples') payload.samples = cells;
  else {
    const rows: unknown[][] = [];
    for (const [g, m, t, value] of cells as [number, number, number, unknown][]) {
      let row = rows.find((r) => r[0] === g && r[1] === t && r[2 + m] === null);
      if (!row) rows.push((row = [g, t, ...metrics.map(() => null)]));
      row[2 + m] = value;
    }
    payload.rows = rows;
  }
  return { id: randomUUID(), payload, attempts: 1, publishedAt: new Date().toISOString() };
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
