import {
  isScrapedSample,
  isTelemetrySample,
  scrapedSample,
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
