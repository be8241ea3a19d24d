import { isSeriesEntry, type SeriesEntry, seriesEntry } from './index';

const valid: SeriesEntry = {
  metric: 'DCGM_FI_DEV_GPU_UTIL',
  labels: { UUID: 'GPU-1', Hostname: 'node-1', job: 'dcgm', instance: 'node-1:9400' },
  samples: [
    [1_790_000_000_000, 42.5],
    [1_790_000_015_000, 'stale'],
    [1_790_000_030_000, 'NaN'],
  ],
};

const withField = (field: string, value: unknown): Record<string, unknown> => {
  const copy: Record<string, unknown> = { ...valid };
  if (value === undefined) delete copy[field];
  else copy[field] = value;
  return copy;
};

// Values the schema accepts or refuses for each field: the fast path must never accept what it refuses.
const variants: Record<string, unknown[]> = {
  metric: ['up', 'ns:metric_1', '1bad', 'bad-name', '', 'x'.repeat(257), null, 5, undefined],
  labels: [
    {},
    { a: '' },
    { a: 'v'.repeat(4097) },
    { a: 'v'.repeat(4096) },
    { ['k'.repeat(257)]: 'v' },
    { '0a': 'v' },
    { __name__: 'x' },
    { __x: 'x' },
    { _a: 'x' },
    { a: 1 },
    { a: null },
    { a: 'nul\u0000' },
    { a: '\ud800' },
    { a: '\ud83d\ude00' },
    Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${i}`, 'v'])),
    Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v'])),
    JSON.parse('{"__proto__": "x"}'),
    ['a'],
    null,
    undefined,
  ],
  samples: [
    [],
    [[0, 0]],
    [[-1, 0]],
    [[1.5, 0]],
    [[253_402_300_799_999, 1]],
    [[253_402_300_800_000, 1]],
    [[1, '+Inf']],
    [[1, '-Inf']],
    [[1, 'Inf']],
    [[1, 'stale']],
    [[1, 'STALE']],
    [[1, null]],
    [[1]],
    [[1, 2, 3]],
    [['1', 2]],
    [{ t: 1, v: 2 }],
    Array.from({ length: 1000 }, (_, i) => [i, i]),
    Array.from({ length: 1001 }, (_, i) => [i, i]),
    'samples',
    undefined,
  ],
};

describe('isSeriesEntry (the streamer fast path for remote-written series)', () => {
  it('accepts a typical series, as the schema does, unchanged', () => {
    expect(isSeriesEntry(valid)).toBe(true);
    expect(seriesEntry.parse(valid)).toEqual(valid);
    expect(isSeriesEntry(JSON.parse(JSON.stringify(valid)))).toBe(true);
  });

  const cases = Object.entries(variants).flatMap(([field, values]) =>
    values.map((value) => [field, value] as const),
  );
  it.each(cases)('never accepts what the schema refuses: %s = %p', (field, value) => {
    const entry = withField(field, value);
    const schema = seriesEntry.safeParse(entry);
    if (isSeriesEntry(entry)) {
      expect(schema.success).toBe(true);
      expect(schema.data).toEqual(entry);
    } else if (!schema.success) {
      expect(schema.error.issues[0]?.path[0]).toBe(field);
    }
  });

  it('refuses unknown and missing fields, and what is not a plain object', () => {
    expect(isSeriesEntry({ ...valid, extra: 1 })).toBe(false);
    expect(isSeriesEntry(withField('labels', undefined))).toBe(false);
    expect(isSeriesEntry(null)).toBe(false);
    expect(isSeriesEntry([valid])).toBe(false);
    expect(isSeriesEntry(JSON.stringify(valid))).toBe(false);
  });
});
