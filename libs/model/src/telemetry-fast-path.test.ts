import { isDeepStrictEqual } from 'node:util';
import {
  isScrapedSample,
  isTelemetryFrame,
  isTelemetrySample,
  scrapedSample,
  telemetryFrame,
  type TelemetrySample,
  telemetrySample,
} from './index';

const valid: TelemetrySample = {
  uuid: '5b8f0d3e-8a8c-5f7e-9d2c-1a2b3c4d5e6f',
  gpuId: 'GPU-ef7fe9c4-4a3e-2b1d-9c8a-7f6e5d4c3b2a',
  gpuIndex: 3,
  device: 'nvidia3',
  modelName: 'NVIDIA H100 80GB HBM3',
  hostname: 'gpu-node-7',
  metricName: 'DCGM_FI_DEV_GPU_UTIL',
  value: 42.5,
  timestamp: '2026-11-23T16:00:00.000Z',
  container: '',
  pod: null,
  namespace: null,
  labels: { DCGM_FI_DRIVER_VERSION: '535.129.03', pci_bus_id: '00000000:3B:00.0' },
};

const { uuid: _uuid, ...validScraped } = valid;

/** One field of `base` changed (or removed, for `undefined`). */
function withField(field: string, value: unknown, base: object = valid): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...base };
  if (value === undefined) delete copy[field];
  else copy[field] = value;
  return copy;
}

// Values that the schema accepts or refuses for each field: the fast path must never disagree
// by accepting what the schema refuses.
const variants: Record<string, unknown[]> = {
  uuid: ['not-a-uuid', '5B8F0D3E-8A8C-5F7E-9D2C-1A2B3C4D5E6F', 42, null, undefined],
  gpuId: ['', 'x'.repeat(128), 'x'.repeat(129), 'GPU-\u0000', null, 7, undefined],
  gpuIndex: [0, 65_535, 65_536, -1, 1.5, '3', null, undefined],
  device: [null, '', 'x'.repeat(129), 1, undefined],
  modelName: [null, 'x'.repeat(256), 'x'.repeat(257), undefined],
  hostname: [null, 'a\u0000b', 'node-\ud83d', 'node-\udc00x', 'node-\ud83d\ude80', undefined],
  metricName: ['DCGM_FI_DEV_FB_USED', 'ns:metric_1', '1bad', 'bad-name', '', 'x'.repeat(257), null],
  value: [0, -1e308, 'NaN', '+Inf', '-Inf', 'Inf', 'nan', '42', null, true, undefined],
  timestamp: [
    '2026-11-23T16:00:00Z',
    '2026-11-23T16:00:00.123456+05:30',
    '2024-02-29T00:00:00Z',
    '2026-02-29T00:00:00Z',
    '2026-11-23 16:00:00Z',
    '2026-11-23T16:00:00',
    '2026-13-01T00:00:00Z',
    '2026-11-23T24:00:00Z',
    1795449600000,
    null,
  ],
  container: [null, '', 'x'.repeat(257), undefined],
  pod: ['trainer-0', 5],
  namespace: ['ml', false],
  labels: [
    {},
    { a: '' },
    { ['k'.repeat(257)]: 'v' },
    { a: 'v'.repeat(4097) },
    { a: 1 },
    { a: null },
    { 'a\u0000': 'v' },
    { a: 'x\ud800' },
    { ['k\udfff']: 'v' },
    { a: '\ud83d\ude80' },
    JSON.parse('{"__proto__": "x", "a": "b"}'),
    Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${i}`, 'v'])),
    Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v'])),
    ['a'],
    null,
    'labels',
    undefined,
  ],
};

describe.each([
  {
    name: 'isTelemetrySample (the streamer fast path)',
    fast: isTelemetrySample,
    schema: telemetrySample,
    valid,
  },
  {
    name: 'isScrapedSample (the collector fast path)',
    fast: isScrapedSample as (value: unknown) => boolean,
    schema: scrapedSample as unknown as typeof telemetrySample,
    valid: validScraped as TelemetrySample,
  },
])('$name', ({ fast, schema, valid }) => {
  it('accepts a typical sample, as the schema does, unchanged', () => {
    expect(fast(valid)).toBe(true);
    expect(schema.parse(valid)).toEqual(valid);
  });

  const cases = Object.entries(variants).flatMap(([field, values]) =>
    values.map((value) => [field, value] as const),
  );
  it.each(cases)('never accepts what the schema refuses: %s = %p', (field, value) => {
    const sample = withField(field, value, valid);
    const checked = schema.safeParse(sample);
    if (fast(sample)) {
      expect(checked.success).toBe(true);
      expect(checked.data).toEqual(sample);
    } else {
      // Refused here: fine either way, the schema decides (and names the field when it refuses).
      // (A field the schema does not know is named in its issue's keys.)
      const issue = checked.error?.issues[0] as { path: PropertyKey[]; keys?: string[] } | undefined;
      if (issue) expect(issue.path[0] ?? issue.keys?.[0]).toBe(field);
    }
  });

  it('refuses unknown and missing fields, and things that are not plain objects', () => {
    expect(fast({ ...valid, extra: 1 })).toBe(false);
    expect(schema.safeParse({ ...valid, extra: 1 }).success).toBe(false);
    expect(fast(withField('labels', undefined, valid))).toBe(false);
    expect(fast(null)).toBe(false);
    expect(fast([valid])).toBe(false);
    expect(fast(JSON.stringify(valid))).toBe(false);
  });

  it('takes the common shapes of real samples, so the schema is only asked about bad ones', () => {
    const common = [
      valid,
      withField('timestamp', '2026-11-23T16:00:00Z', valid),
      withField('value', 'NaN', valid),
      withField('gpuIndex', null, valid),
      { ...valid, container: 'trainer', pod: 'trainer-0', namespace: 'ml', labels: {} },
      JSON.parse(JSON.stringify(valid)),
    ];
    for (const sample of common) expect(fast(sample)).toBe(true);
  });

  it('agrees with the schema on random mutations of a sample', () => {
    // A small deterministic generator: each case mixes several field variants at once.
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const fields = Object.keys(variants);
    let accepted = 0;
    for (let n = 0; n < 2_000; n++) {
      const sample: Record<string, unknown> = { ...valid };
      for (let k = 0; k < 3; k++) {
        const field = fields[Math.floor(random() * fields.length)] as string;
        const options = variants[field] as unknown[];
        const value = options[Math.floor(random() * options.length)];
        if (value === undefined) delete sample[field];
        else sample[field] = value;
      }
      if (fast(sample)) {
        accepted++;
        expect(schema.parse(sample)).toEqual(sample);
      }
    }
    expect(accepted).toBeGreaterThan(100);
  });
});

describe('isTelemetryFrame (the streamer fast path for a frame)', () => {
  const { metricName: _m, value: _v, timestamp: _t, ...group } = validScraped;
  const frame = {
    source: 'http://gpu-node-7:9400/metrics',
    groups: [group, { ...group, gpuId: 'GPU-0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5', gpuIndex: 4 }],
    metrics: ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP'],
    times: ['2026-11-23T16:00:00.000Z'],
    rows: [
      [0, 0, 42.5, 61],
      [1, 0, 'NaN', null],
    ],
  };
  const many = (n: number, make: (i: number) => unknown) => Array.from({ length: n }, (_, i) => make(i));
  const groupVariants = Object.entries(variants)
    .filter(([field]) => field in group)
    .flatMap(([field, values]) => values.map((value) => [withField(field, value, group)]));
  const frameVariants: Record<string, unknown[]> = {
    source: ['csv:replay.csv', '', 'x'.repeat(2048), 'x'.repeat(2049), 'a\u0000b', 7, null, undefined],
    groups: [
      [],
      [group, group],
      many(1_000, () => group),
      many(1_001, () => group),
      [{ ...group, metricName: 'DCGM_FI_DEV_GPU_UTIL' }],
      [null],
      'groups',
      undefined,
      ...groupVariants,
    ],
    metrics: [
      [],
      ['DCGM_FI_DEV_GPU_UTIL'],
      ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_UTIL'],
      ['1bad', 'DCGM_FI_DEV_GPU_TEMP'],
      ['x'.repeat(257), 'y'],
      many(1_001, (i) => `m${i}`),
      [7, 'DCGM_FI_DEV_GPU_TEMP'],
      undefined,
    ],
    times: [
      [],
      ['2026-11-23T16:00:00Z', '2026-11-23T16:00:15Z'],
      ['2026-11-23T16:00:00Z', '2026-11-23T16:00:00Z'],
      ['2026-11-23 16:00:00Z'],
      ['2026-02-29T00:00:00Z'],
      [1795449600000],
      null,
    ],
    rows: [
      [],
      many(1_000, () => [0, 0, 1, 2]),
      many(1_001, () => [0, 0, 1, 2]),
      [['anything']],
      'rows',
      undefined,
    ],
    samples: [[[0, 0, 0, 1]], [], 'samples', undefined],
    extra: [1, undefined],
  };

  it('accepts a typical frame, as the schema does, unchanged', () => {
    expect(isTelemetryFrame(frame)).toBe(true);
    expect(telemetryFrame.parse(frame)).toEqual(frame);
    const { rows: _rows, ...withoutRows } = frame;
    expect(isTelemetryFrame({ ...withoutRows, samples: [[0, 1, 0, 61]] })).toBe(true);
    expect(isTelemetryFrame(JSON.parse(JSON.stringify(frame)))).toBe(true);
  });

  /** A variant as a test's name shows it: long lists by their length, long strings cut. */
  const shown = (value: unknown): string =>
    Array.isArray(value) && value.length > 3
      ? `a list of ${value.length}`
      : (JSON.stringify(value) ?? 'undefined').slice(0, 60);
  const cases = Object.entries(frameVariants).flatMap(([field, values]) =>
    values.map((value) => [field, shown(value), value] as const),
  );
  it.each(cases)('never accepts what the schema refuses: %s = %s', (field, _shown, value) => {
    const changed = withField(field, value, frame);
    const checked = telemetryFrame.safeParse(changed);
    if (isTelemetryFrame(changed)) {
      expect(checked.success).toBe(true);
      expect(checked.data).toEqual(changed);
    }
  });

  it('refuses rows with samples, neither, and what is not a plain object', () => {
    expect(isTelemetryFrame({ ...frame, samples: [[0, 0, 0, 1]] })).toBe(false);
    expect(isTelemetryFrame(withField('rows', undefined, frame))).toBe(false);
    expect(isTelemetryFrame(null)).toBe(false);
    expect(isTelemetryFrame([frame])).toBe(false);
    expect(isTelemetryFrame(JSON.stringify(frame))).toBe(false);
  });

  it('agrees with the schema on random mutations of a frame', () => {
    let seed = 11;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const fields = Object.keys(frameVariants);
    let accepted = 0;
    const askedForNothing: unknown[] = [];
    for (let n = 0; n < 1_000; n++) {
      const changed: Record<string, unknown> = { ...frame };
      for (let k = 0; k < 2; k++) {
        const field = fields[Math.floor(random() * fields.length)] as string;
        const options = frameVariants[field] as unknown[];
        const value = options[Math.floor(random() * options.length)];
        if (value === undefined) delete changed[field];
        else changed[field] = value;
      }
      const checked = telemetryFrame.safeParse(changed);
      if (isTelemetryFrame(changed)) {
        accepted++;
        expect(checked.data).toEqual(changed);
      } else if (checked.success && isDeepStrictEqual(checked.data, changed)) askedForNothing.push(changed);
    }
    expect(accepted).toBeGreaterThan(100);
    // Nor does it refuse a frame the schema takes as is (a frame has no uuid to lower-case), so
    // the schema is asked only about frames it refuses or would change.
    expect(askedForNothing).toEqual([]);
  });
});
