import fc from 'fast-check';
import {
  decodeWriteRequest,
  encodeWriteRequest,
  type WriteRequestLimits,
  type WriteSeries,
  WriteRequestError,
} from './write-request';

const LIMITS: WriteRequestLimits = {
  maxSeries: 1_000,
  maxSamples: 10_000,
  maxTimestampMs: Date.parse('2100-01-01'),
};
const STALE_BITS = 0x7ff0000000000002n;

const series = (
  labels: Record<string, string>,
  samples: [number, number | bigint][] = [[1_700_000_000_000, 1]],
): WriteSeries => ({
  labels: Object.entries(labels).map(([name, value]) => ({ name, value })),
  timestamps: samples.map(([t]) => t),
  values: samples.map(([, v]) => v),
});

const decode = (body: Buffer, limits = LIMITS) => decodeWriteRequest(body, limits);
/** The one reason a request of one series that cannot be stored gives, nothing decoded from it. */
const passedOver = (body: Buffer): string => {
  const decoded = decode(body);
  expect(decoded.series).toEqual([]);
  expect(decoded.refused.series).toBe(1);
  return decoded.refused.reasons[0] as string;
};
const refusal = (body: Buffer, limits = LIMITS): WriteRequestError => {
  try {
    decode(body, limits);
  } catch (error) {
    expect(error).toBeInstanceOf(WriteRequestError);
    return error as WriteRequestError;
  }
  throw new Error('decoded');
};

/** Protobuf pieces by hand, for what the encoder never writes. */
const varint = (n: number) => {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
};
const delimited = (field: number, payload: Buffer) =>
  Buffer.concat([varint(field * 8 + 2), varint(payload.length), payload]);

describe('decodeWriteRequest', () => {
  it('reads back what was encoded: labels as sent, values bit for bit, the stale marker apart from NaN', () => {
    const name = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,20}$/).filter((n) => !n.startsWith('__'));
    const value = fc.oneof(
      fc.double({ noNaN: true }),
      fc.constantFrom(NaN, Infinity, -Infinity, 0, 1.5),
      fc.constant(STALE_BITS),
    );
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            metric: fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,30}$/),
            labels: fc.dictionary(
              name,
              fc.string({ minLength: 1, maxLength: 30 }).filter((v) => !v.includes('\u0000')),
              {
                maxKeys: 10,
              },
            ),
            samples: fc.array(fc.tuple(fc.integer({ min: 0, max: 4_000_000_000_000 }), value), {
              maxLength: 5,
            }),
          }),
          { maxLength: 10 },
        ),
        (input) => {
          const body = encodeWriteRequest(
            input.map((s) => series({ __name__: s.metric, ...s.labels }, s.samples)),
          );
          const decoded = decode(body);
          const sent = input.filter((s) => s.samples.length > 0);
          expect(decoded.series).toEqual(
            sent.map((s) => ({
              metric: s.metric,
              labels: s.labels,
              timestamps: s.samples.map(([t]) => t),
              values: s.samples.map(([, v]) =>
                typeof v === 'bigint'
                  ? 'stale'
                  : Number.isNaN(v)
                    ? 'NaN'
                    : v === Infinity
                      ? '+Inf'
                      : v === -Infinity
                        ? '-Inf'
                        : v,
              ),
            })),
          );
          expect(decoded.staleMarkers).toBe(
            sent.flatMap((s) => s.samples).filter(([, v]) => typeof v === 'bigint').length,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('tells the stale marker by its exact bits: other NaNs are NaN', () => {
    const decoded = decode(
      encodeWriteRequest([
        series({ __name__: 'm' }, [
          [1, STALE_BITS],
          [2, 0x7ff8000000000000n],
          [3, 0x7ff0000000000003n],
          [4, 0xfff0000000000002n],
        ]),
      ]),
    );
    expect(decoded.series[0]?.values).toEqual(['stale', 'NaN', 'NaN', 'NaN']);
  });

  it('keeps label order and spelling, and leaves out labels with empty values', () => {
    const decoded = decode(
      encodeWriteRequest([series({ zeta: '1', __name__: 'up', UUID: 'GPU-1', empty: '', alpha: 'ü' })]),
    );
    expect(decoded.series[0]).toMatchObject({
      metric: 'up',
      labels: { zeta: '1', UUID: 'GPU-1', alpha: 'ü' },
    });
    expect(Object.keys(decoded.series[0]?.labels ?? {})).toEqual(['zeta', 'UUID', 'alpha']);
  });

  it('skips unknown fields, counts exemplars and native histograms without storing them, and reads metadata', () => {
    const ts = Buffer.concat([
      delimited(1, Buffer.concat([delimited(1, Buffer.from('__name__')), delimited(2, Buffer.from('up'))])),
      delimited(
        2,
        Buffer.concat([
          Buffer.from([0x09]),
          Buffer.alloc(8),
          Buffer.from([0x10, 0x05]),
          Buffer.from([0x78, 0x01]),
        ]),
      ),
      delimited(3, Buffer.from([0x11, 0, 0, 0, 0, 0, 0, 0, 0])),
      delimited(4, Buffer.from([0x08, 0x01])),
      Buffer.from([0xa8, 0x01, 0x07]), // field 21, varint: unknown
    ]);
    const body = Buffer.concat([
      delimited(1, ts),
      delimited(3, Buffer.concat([Buffer.from([0x08, 0x01]), delimited(2, Buffer.from('up'))])),
      Buffer.from([0x15, 1, 2, 3, 4]), // field 2, fixed32: unknown (Cortex's reserved source)
    ]);
    const decoded = decode(body);
    expect(decoded.series).toEqual([{ metric: 'up', labels: {}, timestamps: [5], values: [0] }]);
    expect(decoded.ignored).toEqual({ exemplars: 1, histograms: 1, metadata: 0 });
    expect(decoded.metadata).toEqual([{ metric: 'up', type: 'counter', help: '', unit: '' }]);
  });

  it('reads metadata as Prometheus sends it, types by their enum, cutting help past its limit', () => {
    const body = encodeWriteRequest(
      [],
      [
        { metric: 'DCGM_FI_DEV_GPU_TEMP', type: 'gauge', help: 'GPU temperature (in C).', unit: '' },
        { metric: 'node_cpu_seconds_total', type: 'counter', help: 'é'.repeat(5000), unit: 'seconds' },
        { metric: 'h', type: 'stateset', help: '', unit: '' },
      ],
    );
    const decoded = decode(body);
    expect(decoded.series).toEqual([]);
    expect(decoded.metadata.map((m) => [m.metric, m.type, m.help.length, m.unit])).toEqual([
      ['DCGM_FI_DEV_GPU_TEMP', 'gauge', 23, ''],
      ['node_cpu_seconds_total', 'counter', 4096, 'seconds'],
      ['h', 'stateset', 0, ''],
    ]);
    // An enum number this receiver does not know is `unknown`.
    const future = delimited(3, Buffer.concat([Buffer.from([0x08, 0x63]), delimited(2, Buffer.from('x'))]));
    expect(decode(future).metadata).toEqual([{ metric: 'x', type: 'unknown', help: '', unit: '' }]);
  });

  it('passes over metadata of a family whose name is not a metric name, counting it', () => {
    const body = encodeWriteRequest(
      [],
      [
        { metric: 'ok', type: 'gauge', help: '', unit: '' },
        { metric: '1bad', type: 'gauge', help: '', unit: '' },
      ],
    );
    const decoded = decode(body);
    expect(decoded.metadata.map((m) => m.metric)).toEqual(['ok']);
    expect(decoded.ignored.metadata).toBe(1);
  });

  it('passes over a series with only histograms: nothing to store, nothing wrong', () => {
    const ts = Buffer.concat([
      delimited(1, Buffer.concat([delimited(1, Buffer.from('__name__')), delimited(2, Buffer.from('h'))])),
      delimited(4, Buffer.from([0x08, 0x01])),
    ]);
    expect(decode(delimited(1, ts)).series).toEqual([]);
  });

  it.each([
    [
      'a series without __name__',
      [series({ job: 'x' })],
      'timeseries[0] has no __name__ label (its metric name)',
    ],
    [
      'a bad metric name',
      [series({ __name__: 'bad-name' })],
      'timeseries[0]: the metric name "bad-name" is not a Prometheus metric name',
    ],
    [
      'a bad label name',
      [series({ __name__: 'up', 'a.b': '1' })],
      'timeseries[0]: the label name "a.b" is not a Prometheus label name',
    ],
    [
      'a label name starting with a digit',
      [series({ __name__: 'up', '1a': '1' })],
      'the label name "1a" is not a Prometheus label name',
    ],
    [
      'a value with NUL',
      [series({ __name__: 'up', a: 'x\u0000' })],
      'timeseries[0]: the value of a holds a NUL character',
    ],
    [
      'a value too long',
      [series({ __name__: 'up', a: 'x'.repeat(4097) })],
      'the value of a is longer than 4096 characters',
    ],
    [
      'too many labels',
      [
        series({
          __name__: 'up',
          ...Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v'])),
        }),
      ],
      'timeseries[0] has more than 64 labels besides __name__',
    ],
    [
      'too many labels, most of them empty',
      [
        series({
          __name__: 'up',
          ...Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`l${i}`, ''])),
        }),
      ],
      'timeseries[0] has more than 129 labels',
    ],
    [
      'a time before 1970',
      [series({ __name__: 'up' }, [[-1, 1]])],
      'timeseries[0].samples[0]: the timestamp -1 is before 1970 or after 9999',
    ],
    [
      'a time in the far future',
      [series({ __name__: 'up' }, [[Date.parse('2200-01-01'), 1]])],
      `timeseries[0].samples[0]: the timestamp ${Date.parse('2200-01-01')} is more than a day in the future`,
    ],
  ])('passes over %s, naming it, and keeps the series beside it', (_what, input, message) => {
    const good = series({ __name__: 'up', job: 'kept' });
    const decoded = decode(encodeWriteRequest([...input, good]));
    expect(decoded.series).toEqual([
      { metric: 'up', labels: { job: 'kept' }, timestamps: [1_700_000_000_000], values: [1] },
    ]);
    expect(decoded.samples).toBe(1);
    expect(decoded.refused.reasons).toEqual([expect.stringContaining(message)]);
    // A series is refused whole; a sample out of time range only itself.
    const bySample = /timestamp/.test(message);
    expect(decoded.refused).toMatchObject({ series: bySample ? 0 : 1, samples: 1 });
  });

  it('passes over a sample older than minTimestampMs (TELEMETRY_RETENTION), keeping the newer ones', () => {
    const decoded = decode(
      encodeWriteRequest([
        series({ __name__: 'up' }, [
          [1_600_000_000_000, 1],
          [1_700_000_000_000, 2],
        ]),
      ]),
      { ...LIMITS, minTimestampMs: 1_650_000_000_000 },
    );
    expect(decoded.series).toEqual([
      { metric: 'up', labels: {}, timestamps: [1_700_000_000_000], values: [2] },
    ]);
    expect(decoded.refused).toMatchObject({ series: 0, samples: 1 });
    expect(decoded.refused.reasons).toEqual([
      'timeseries[0].samples[0]: the timestamp 1600000000000 is older than TELEMETRY_RETENTION',
    ]);
  });

  it('keeps the samples of a series beside one out of time range', () => {
    const decoded = decode(
      encodeWriteRequest([
        series({ __name__: 'up' }, [
          [1_700_000_000_000, 1],
          [Date.parse('2200-01-01'), 2],
          [1_700_000_015_000, 3],
        ]),
      ]),
    );
    expect(decoded.series).toEqual([
      { metric: 'up', labels: {}, timestamps: [1_700_000_000_000, 1_700_000_015_000], values: [1, 3] },
    ]);
    expect(decoded.refused).toMatchObject({ series: 0, samples: 1 });
  });

  it('takes label names that are also names on every JavaScript object (constructor, toString)', () => {
    const decoded = decode(
      encodeWriteRequest([series({ __name__: 'up', constructor: 'x', toString: 'y', hasOwnProperty: 'z' })]),
    );
    expect(decoded.refused.series).toBe(0);
    expect(decoded.series[0]?.labels).toEqual({ constructor: 'x', toString: 'y', hasOwnProperty: 'z' });
  });

  it('passes over a series whose labels take more than 64 KiB as JSON, counted in bytes', () => {
    // 64 labels of 400 characters of three bytes each: 25,600 characters, 76,800 bytes.
    const wide = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`l${i}`, '\u6e29'.repeat(400)]));
    const decoded = decode(
      encodeWriteRequest([series({ __name__: 'up', ...wide }), series({ __name__: 'ok' })]),
    );
    expect(decoded.series.map((s) => s.metric)).toEqual(['ok']);
    expect(decoded.refused.reasons).toEqual(['timeseries[0]: its labels take more than 65536 bytes as JSON']);
  });

  it('passes over a series with a label sent twice', () => {
    const error = passedOver(
      encodeWriteRequest([
        {
          labels: [
            { name: '__name__', value: 'up' },
            { name: 'a', value: '1' },
            { name: 'a', value: '2' },
          ],
          timestamps: [1],
          values: [1],
        },
      ]),
    );
    expect(error).toBe('timeseries[0] has the label a twice');
    const emptyFirst = passedOver(
      encodeWriteRequest([
        {
          labels: [
            { name: '__name__', value: 'up' },
            { name: 'a', value: '' },
            { name: 'a', value: '2' },
          ],
          timestamps: [1],
          values: [1],
        },
      ]),
    );
    expect(emptyFirst).toBe('timeseries[0] has the label a twice');
    const twoNames = passedOver(
      encodeWriteRequest([
        {
          labels: [
            { name: '__name__', value: 'up' },
            { name: '__name__', value: 'down' },
          ],
          timestamps: [1],
          values: [1],
        },
      ]),
    );
    expect(twoNames).toBe('timeseries[0] has the label __name__ twice');
  });

  it.each([
    ['a key cut short', Buffer.from([0x8a]), 'a WriteRequest field is cut short'],
    [
      'a length past the end',
      Buffer.from([0x0a, 0x05, 0x01]),
      'timeseries[0] runs past the end of its message',
    ],
    ['field number 0', Buffer.from([0x02, 0x00]), 'a WriteRequest field has field number 0'],
    [
      'the wrong wire type',
      Buffer.from([0x08, 0x01]),
      'timeseries has wire type 0, not 2 as the schema says',
    ],
    ['a group', Buffer.from([0x13]), 'WriteRequest field 2 has wire type 3, which this message cannot hold'],
    [
      'invalid UTF-8',
      delimited(
        1,
        delimited(
          1,
          Buffer.concat([delimited(1, Buffer.from('__name__')), delimited(2, Buffer.from([0xc3, 0x28]))]),
        ),
      ),
      'timeseries[0].labels[0].value is not valid UTF-8',
    ],
    [
      'a sample value cut short',
      delimited(1, delimited(2, Buffer.from([0x09, 1, 2]))),
      'timeseries[0].samples[0].value is cut short',
    ],
  ])('refuses malformed protobuf: %s', (_what, body, message) => {
    expect(refusal(body).message).toBe(message);
  });

  it('refuses more series or samples than the limits as too large (413), before decoding the rest', () => {
    const many = encodeWriteRequest(
      Array.from({ length: 11 }, (_, i) => series({ __name__: 'up', i: String(i) })),
    );
    const tooMany = refusal(many, { ...LIMITS, maxSeries: 10 });
    expect([tooMany.status, tooMany.message]).toEqual([413, 'the request holds more than 10 series']);
    const samples = encodeWriteRequest([
      series(
        { __name__: 'up' },
        Array.from({ length: 6 }, (_, i) => [i, i] as [number, number]),
      ),
    ]);
    const tooManySamples = refusal(samples, { ...LIMITS, maxSamples: 5 });
    expect([tooManySamples.status, tooManySamples.message]).toEqual([
      413,
      'the request holds more than 5 samples',
    ]);
  });

  it('never throws anything but WriteRequestError on damaged bodies', () => {
    const good = encodeWriteRequest([
      series({ __name__: 'DCGM_FI_DEV_GPU_UTIL', UUID: 'GPU-1', Hostname: 'n' }, [[1_700_000_000_000, 5]]),
      series({ __name__: 'up', job: 'j' }, [[1_700_000_000_000, STALE_BITS]]),
    ]);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }),
        (damage) => {
          const broken = Buffer.from(good);
          for (const [at, byte] of damage) broken[at % broken.length] = byte;
          try {
            decode(broken);
          } catch (error) {
            expect(error).toBeInstanceOf(WriteRequestError);
          }
        },
      ),
      { numRuns: 3_000 },
    );
  });
});
