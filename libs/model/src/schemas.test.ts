import {
  ackBody,
  frameRowProblem,
  frameSamples,
  fromSampleValue,
  isSampleValue,
  isTelemetrySample,
  leaseBody,
  publishBatchBody,
  telemetryFrame,
  type TelemetryFrame,
  telemetrySample,
  toSampleValue,
  topicName,
} from './index';

describe('wire schemas', () => {
  it('normalise ids to lower case and drop repeated ids in ack lists', () => {
    const id = 'AB6D3C4E-1F2A-4B3C-9D8E-7F6A5B4C3D2E';
    expect(ackBody.parse({ leaseId: id, ids: [id, id.toLowerCase()] })).toEqual({
      leaseId: id.toLowerCase(),
      ids: [id.toLowerCase()],
    });
  });

  it('fill lease defaults and bound every number', () => {
    expect(leaseBody.parse({ consumer: 'c' })).toEqual({
      consumer: 'c',
      max: 10,
      visibilitySeconds: 30,
      waitSeconds: 0,
    });
    expect(leaseBody.safeParse({ consumer: 'c', waitSeconds: 61 }).success).toBe(false);
  });

  it('bound batches to 1..1000 messages and refuse unknown fields', () => {
    expect(publishBatchBody.safeParse({ messages: [] }).success).toBe(false);
    expect(
      publishBatchBody.safeParse({ messages: Array.from({ length: 1000 }, () => ({ payload: 1 })) }).success,
    ).toBe(true);
    expect(publishBatchBody.safeParse({ messages: [{ payload: 1, priority: 2 }] }).success).toBe(false);
  });

  it.each(['telemetry', 'a', 'gpu.metrics_v2-eu', '0'])('accept topic %p', (name) => {
    expect(topicName.safeParse(name).success).toBe(true);
  });

  it.each(['', 'Telemetry', '-x', 'a b', 'x'.repeat(64), 'ü'])('refuse topic %p', (name) => {
    expect(topicName.safeParse(name).success).toBe(false);
  });
});

describe('sample values', () => {
  it('carry NaN and infinities through JSON as strings', () => {
    for (const value of [NaN, Infinity, -Infinity, 0, -1.5, 1e300]) {
      const wire = JSON.parse(JSON.stringify(toSampleValue(value)));
      expect(fromSampleValue(wire)).toBe(value);
    }
  });

  it('refuse a sample with an unknown field, a bad metric name or too many labels', () => {
    const base = {
      uuid: '00000000-0000-4000-8000-000000000000',
      gpuId: 'GPU-1',
      gpuIndex: 0,
      device: null,
      modelName: null,
      hostname: null,
      metricName: 'DCGM_FI_DEV_GPU_UTIL',
      value: 1,
      timestamp: '2026-01-01T00:00:00Z',
      container: null,
      pod: null,
      namespace: null,
      labels: {},
    };
    expect(telemetrySample.safeParse(base).success).toBe(true);
    expect(telemetrySample.safeParse({ ...base, extra: 1 }).success).toBe(false);
    expect(telemetrySample.safeParse({ ...base, metricName: 'gpu util' }).success).toBe(false);
    expect(telemetrySample.safeParse({ ...base, value: 'Infinity' }).success).toBe(false);
    // A GPU id is a REST path segment: 1-128 letters, digits and _ . : - (MIG ids included).
    expect(
      telemetrySample.safeParse({ ...base, gpuId: 'MIG-1fc2b4d4-7c6a-5b7c-9b7b-1f0e0e0e0e0e' }).success,
    ).toBe(true);
    for (const gpuId of ['', 'GPU 1', 'GPU/1', 'GPU-1?x', 'g'.repeat(129), 'GPU-é']) {
      const parsed = telemetrySample.safeParse({ ...base, gpuId });
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0]?.path).toEqual(['gpuId']);
      expect(parsed.error?.issues[0]?.message).toMatch(/must be a GPU id/);
      expect(isTelemetrySample({ ...base, gpuId })).toBe(false);
    }
    expect(
      telemetrySample.safeParse({
        ...base,
        labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])),
      }).success,
    ).toBe(false);
  });
});

describe('telemetryFrame', () => {
  const group = (gpuId: string) => ({
    gpuId,
    gpuIndex: 0,
    device: 'nvidia0',
    modelName: null,
    hostname: 'node-1',
    container: null,
    pod: null,
    namespace: null,
    labels: {},
  });
  const frame = {
    source: 'http://node-1:9400/metrics',
    groups: [group('GPU-a'), group('GPU-b')],
    metrics: ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP'],
    times: ['2026-01-01T00:00:00Z', '2026-01-01T00:00:15Z'],
  };

  it("reads rows' samples metric by metric, skipping the null cells, as the [g, m, t, v] form reads them", () => {
    const rows = telemetryFrame.parse({
      ...frame,
      rows: [
        [0, 0, 1, 'NaN'],
        [1, 0, 2, null],
        [0, 1, null, 3],
      ],
    });
    const samples = telemetryFrame.parse({
      ...frame,
      samples: [
        [0, 0, 0, 1],
        [1, 0, 0, 2],
        [0, 1, 0, 'NaN'],
        [0, 1, 1, 3],
      ],
    });
    const view = (f: TelemetryFrame) =>
      frameSamples(f).map((s) => [s.gpuId, s.metricName, s.timestamp, s.value]);
    expect(view(rows)).toEqual([
      ['GPU-a', 'DCGM_FI_DEV_GPU_UTIL', '2026-01-01T00:00:00Z', 1],
      ['GPU-b', 'DCGM_FI_DEV_GPU_UTIL', '2026-01-01T00:00:00Z', 2],
      ['GPU-a', 'DCGM_FI_DEV_GPU_TEMP', '2026-01-01T00:00:00Z', 'NaN'],
      ['GPU-a', 'DCGM_FI_DEV_GPU_TEMP', '2026-01-01T00:00:15Z', 3],
    ]);
    expect(view(samples)).toEqual(view(rows));
  });

  it('takes rows or samples, not both and not neither, each metric and time once, and names what is wrong with a row', () => {
    const issues = (payload: object) =>
      telemetryFrame.safeParse(payload).error?.issues.map((i) => [i.path.join('.'), i.message]);
    expect(issues({ ...frame })).toEqual([['rows', 'is required (or samples)']]);
    expect(issues({ ...frame, rows: [[0, 0, 1, 2]], samples: [[0, 0, 0, 1]] })).toEqual([
      ['samples', 'must not be sent with rows'],
    ]);
    expect(issues({ ...frame, rows: [] })).toEqual([['rows', 'must contain at least one row']]);
    const parsed = telemetryFrame.parse({ ...frame, rows: [[0, 0, 1, 2]] });
    expect(frameRowProblem(parsed, [0, 1, 1, 2])).toBeUndefined();
    expect(frameRowProblem(parsed, [0, 0, 1])).toBe(
      ': must be [group, time, then one value or null for each of the 2 metrics]',
    );
    expect(frameRowProblem(parsed, [2, 0, 1, 2])).toBe('[0]: must be the index of one of the 2 groups');
    expect(frameRowProblem(parsed, [0, 1.5, 1, 2])).toBe('[1]: must be the index of one of the 2 times');
    expect(issues({ ...frame, metrics: ['A', 'B', 'A', 'B'], rows: [[0, 0, 1, 2, 3, 4]] })).toEqual([
      ['metrics.2', 'repeats metrics[0]'],
      ['metrics.3', 'repeats metrics[1]'],
    ]);
    expect(issues({ ...frame, times: [frame.times[1], frame.times[1]], rows: [[0, 0, 1, 2]] })).toEqual([
      ['times.1', 'repeats times[0]'],
    ]);
    expect(isSampleValue('Infinity')).toBe(false);
    expect(isSampleValue(null)).toBe(false);
    expect(isSampleValue(Number.NaN)).toBe(false);
  });
});
