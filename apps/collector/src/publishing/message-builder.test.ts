import {
  frameSamples,
  metadataBatch,
  type MetricMetadata,
  type ScrapedSample,
  telemetryFrame,
} from '@gpu-telemetry/model';
import { buildMessages, metadataMessages } from './message-builder';

/**
 * A scrape's samples: `gpus` GPUs x `metrics` metrics at one time, labels long enough to weigh;
 * metric by metric, as an exporter lists them.
 */
function scrape(gpus: number, metrics: number, labelBytes = 40, char = 'x'): ScrapedSample[] {
  const out: ScrapedSample[] = [];
  for (let m = 0; m < metrics; m++) {
    for (let g = 0; g < gpus; g++) {
      out.push({
        gpuId: `GPU-${String(g).padStart(8, '0')}-0000-0000-0000-000000000000`,
        gpuIndex: g % 8,
        device: `nvidia${g % 8}`,
        modelName: 'NVIDIA H100 80GB HBM3',
        hostname: `node-${Math.floor(g / 8)}`,
        metricName: `DCGM_FI_METRIC_${m}`,
        value: m === 3 ? 'NaN' : g * 1000 + m + 0.25,
        timestamp: '2026-12-01T10:00:00.000Z',
        container: null,
        pod: g % 2 ? 'job-1' : null,
        namespace: null,
        labels: { pci_bus_id: '00000000:18:00.0', note: char.repeat(labelBytes) },
      });
    }
  }
  return out;
}

describe('buildMessages', () => {
  it('sends a scrape as frames: each GPU, metric and time once, every sample as it was', () => {
    const samples = scrape(8, 40);
    const [only, ...rest] = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
    expect(rest).toEqual([]);
    const { id, payload } = JSON.parse(only!.json) as { id: string; payload: unknown };
    expect(id).toBe(only!.id);
    const frame = telemetryFrame.parse(payload);
    expect([frame.groups.length, frame.metrics.length, frame.times.length, only!.samples]).toEqual([
      8, 40, 1, 320,
    ]);
    expect(frameSamples(frame)).toEqual(samples);
    // A row per GPU, a value per metric: a sample is its value and a comma.
    expect(frame.rows).toHaveLength(8);
    expect(JSON.stringify(frame.rows).length).toBeLessThan(320 * 12);
    // A twentieth of the bytes of the samples written out whole.
    expect(only!.json.length).toBeLessThan(JSON.stringify(samples).length / 20);
  });

  it('leaves a cell null where a GPU has no sample of a metric, and sends a series met twice as a second row', () => {
    const [a, b, c] = scrape(2, 2);
    const again = { ...a!, value: 7 };
    const [only] = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, [a!, b!, c!, again]);
    const frame = telemetryFrame.parse(JSON.parse(only!.json).payload);
    // a and b: metric 0 of GPUs 0 and 1; c: metric 1 of GPU 0; again: metric 0 of GPU 0.
    expect(frame.rows).toEqual([
      [0, 0, a!.value, c!.value],
      [1, 0, b!.value, null],
      [0, 0, 7, null],
    ]);
    expect(only!.samples).toBe(4);
    const sorted = (list: object[]) =>
      list.map((s) => JSON.stringify(Object.entries(s).sort(([a], [b]) => (a < b ? -1 : 1)))).sort();
    expect(sorted(frameSamples(frame))).toEqual(sorted([a!, b!, c!, again]));
  });

  it('makes a group per GPU and label set: MIG instances of one GPU apart, one label set in any key order together', () => {
    const [base] = scrape(1, 1);
    const mig = (id: string, metricName: string) => ({
      ...base!,
      metricName,
      labels: { GPU_I_ID: id, GPU_I_PROFILE: '3g.40gb' },
    });
    const reordered = {
      ...mig('1', 'DCGM_FI_METRIC_1'),
      labels: { GPU_I_PROFILE: '3g.40gb', GPU_I_ID: '1' },
    };
    const moved = { ...mig('1', 'DCGM_FI_METRIC_2'), hostname: 'node-9' };
    const samples = [
      mig('1', 'DCGM_FI_METRIC_0'),
      mig('2', 'DCGM_FI_METRIC_0'),
      reordered,
      mig('2', 'DCGM_FI_METRIC_1'),
      moved,
    ];
    const [only] = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
    const frame = telemetryFrame.parse(JSON.parse(only!.json).payload);
    expect(frame.groups.map((g) => [g.labels['GPU_I_ID'], g.hostname])).toEqual([
      ['1', 'node-0'],
      ['2', 'node-0'],
      ['1', 'node-9'],
    ]);
    // Every object's keys in order: label sets compared whatever the order of their keys.
    const canonical = (sample: object) =>
      JSON.stringify(sample, (_, v) =>
        v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v,
      );
    expect(frameSamples(frame).map(canonical).sort()).toEqual(samples.map(canonical).sort());
  });

  it('sends each group once however many label sets one GPU has (a label of every sample its own)', () => {
    const [base] = scrape(1, 1);
    const samples = Array.from({ length: 30 }, (_, i) => ({
      ...base!,
      value: i,
      labels: { pid: String(i % 20) },
    }));
    const [only] = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
    const frame = telemetryFrame.parse(JSON.parse(only!.json).payload);
    expect(frame.groups.map((g) => g.labels['pid'])).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(frameSamples(frame)).toEqual(samples);
  });

  it('sends a scrape whose rows would be mostly null as [group, metric, time, value] samples', () => {
    // Every GPU a metric of its own: as rows, each would be one value among 199 nulls (~200 KiB).
    // (And GPU 0's series again, with another value: kept, in the order it came.)
    const sparse = scrape(200, 1).map((s, g) => ({ ...s, metricName: `DCGM_FI_METRIC_${g}` }));
    const samples = [...sparse, { ...sparse[0]!, value: 9 }];
    const messages = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
    expect(messages).toHaveLength(1);
    const frame = telemetryFrame.parse(JSON.parse(messages[0]!.json).payload);
    expect(frame.rows).toBeUndefined();
    expect(frame.samples).toHaveLength(201);
    expect(frame.samples?.at(-1)).toEqual([0, 0, 0, 9]);
    expect(frameSamples(frame)).toEqual(samples);
    expect(Buffer.byteLength(messages[0]!.json)).toBeLessThan(100 * 1024);
  });

  it('counts the bytes of the message it will send, in the form it will send it: none past the limit', () => {
    // GPUs with 8 KiB of labels: 25 metrics each, a GPU after another (dense rows), or each with
    // a metric of its own (rows would be nulls). Either way the bytes, not the 1000 samples, split.
    const byGpu = (gpus: number, metrics: number) =>
      Array.from({ length: gpus }, (_, g) =>
        scrape(1, metrics, 4_096).map((s) => ({
          ...s,
          gpuId: `GPU-${g}`,
          labels: { ...s.labels, more: s.labels['note']! },
        })),
      );
    const dense = byGpu(60, 25).flat();
    const sparse = byGpu(60, 1).flatMap(([s], g) => [{ ...s!, metricName: `DCGM_FI_METRIC_${g}` }]);
    for (const [samples, form] of [
      [dense, 'rows'],
      [sparse, 'samples'],
    ] as const) {
      const messages = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
      expect(messages.length).toBeGreaterThan(1);
      for (const [i, m] of messages.entries()) {
        const frame = telemetryFrame.parse(JSON.parse(m.json).payload);
        expect(frame[form]).toBeDefined();
        const bytes = Buffer.byteLength(m.json);
        expect(bytes).toBeLessThanOrEqual(200 * 1024);
        // Full: the next GPU (its 8 KiB of labels) would not have fitted.
        if (i < messages.length - 1) expect(bytes).toBeGreaterThan(190 * 1024);
      }
      expect(
        messages.flatMap((m) => frameSamples(telemetryFrame.parse(JSON.parse(m.json).payload))).length,
      ).toBe(samples.length);
    }
  });

  it('splits at 1000 samples and at ~200 KiB, each frame whole, with the same ids each time', () => {
    for (const samples of [scrape(100, 25), scrape(400, 4, 2_000)]) {
      const messages = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
      expect(messages.length).toBeGreaterThan(1);
      const back = messages.flatMap((m) => {
        expect(m.json.length).toBeLessThanOrEqual(200 * 1024);
        const frame = telemetryFrame.parse(JSON.parse(m.json).payload);
        expect(frameSamples(frame)).toHaveLength(m.samples);
        return frameSamples(frame);
      });
      expect(back).toEqual(samples);
      expect(
        buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples).map((m) => m.id),
      ).toEqual(messages.map((m) => m.id));
    }
  });

  it('counts the ~200 KiB in UTF-8 bytes, as the queue does, not in characters', () => {
    // Label values of 2,000 CJK characters: 6,000 bytes each, three to a character.
    const samples = scrape(100, 2, 2_000, '\u6e29');
    const messages = buildMessages('http://node-0:9400/metrics', 1_700_000_000_000, samples);
    expect(messages.length).toBeGreaterThan(2);
    for (const m of messages) expect(Buffer.byteLength(m.json)).toBeLessThanOrEqual(200 * 1024 + 512);
    expect(messages.flatMap((m) => frameSamples(telemetryFrame.parse(JSON.parse(m.json).payload)))).toEqual(
      samples,
    );
  });
});

describe('metadataMessages', () => {
  it('splits long metadata into messages of at most ~200 KiB in UTF-8, each one the streamer takes', () => {
    // 64 families with 4,096-character help texts of 3-byte characters: ~800 KiB in all.
    const entries: MetricMetadata[] = Array.from({ length: 64 }, (_, i) => ({
      metric: `DCGM_FI_FAMILY_${i}`,
      type: 'gauge',
      help: '€'.repeat(4096),
      unit: '',
    }));
    const messages = metadataMessages('http://node-1:9400/metrics', '1700000000000', entries);
    expect(messages.length).toBeGreaterThanOrEqual(4);
    const seen: string[] = [];
    for (const m of messages) {
      expect(Buffer.byteLength(m.json)).toBeLessThanOrEqual(200 * 1024 + 512);
      const { id, payload } = JSON.parse(m.json) as { id: string; payload: unknown };
      expect(id).toBe(m.id);
      const parsed = metadataBatch.parse(payload);
      seen.push(...parsed.metadata.map((e) => e.metric));
    }
    expect(seen).toEqual(entries.map((e) => e.metric));
    // The same input gives the same ids: a retried publish is a duplicate.
    expect(metadataMessages('http://node-1:9400/metrics', '1700000000000', entries).map((m) => m.id)).toEqual(
      messages.map((m) => m.id),
    );
  });

  it('keeps at most 1000 metrics a message', () => {
    const entries: MetricMetadata[] = Array.from({ length: 2_500 }, (_, i) => ({
      metric: `m_${i}`,
      type: 'counter',
      help: '',
      unit: '',
    }));
    expect(
      metadataMessages('remote-write', 'abc', entries).map((m) => JSON.parse(m.json).payload.metadata.length),
    ).toEqual([1000, 1000, 500]);
  });
});
