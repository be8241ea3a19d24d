import {
  BadDataError,
  ExecutionError,
  formatValue,
  MemorySeriesSource,
  parseExpr,
  PromQLEngine,
  QueryCanceledError,
  QueryTimeoutError,
  type SelectHints,
  type SeriesSource,
  toPrometheusData,
  toPrometheusError,
  TooManySamplesError,
} from './index';
import { FUNCTIONS } from './ast';

const s = 1000;
const m = 60 * s;

/** Samples every 15 s from 0: values[i] at i * 15 s. */
function every15s(values: number[]): [number, number][] {
  return values.map((v, i) => [i * 15 * s, v]);
}

/**
 * Runs a range query (from 0) that must time out; how long it took, and the longest the event
 * loop went without running a 5 ms timer meanwhile.
 */
async function timedOut(engine: PromQLEngine, query: string, endMs: number, stepMs: number) {
  let last = performance.now();
  let longestGap = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longestGap = Math.max(longestGap, now - last);
    last = now;
  }, 5);
  const started = performance.now();
  try {
    const err = await engine.rangeQuery(query, 0, endMs, stepMs).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueryTimeoutError);
  } finally {
    clearInterval(ticker);
  }
  return { elapsed: performance.now() - started, longestGap };
}

async function instant(
  source: MemorySeriesSource,
  query: string,
  t: number,
  engine = new PromQLEngine({ source }),
) {
  return toPrometheusData(await engine.instantQuery(query, t));
}

async function values(source: MemorySeriesSource, query: string, t: number): Promise<Record<string, string>> {
  const data = await instant(source, query, t);
  if (data.resultType !== 'vector') throw new Error(`expected a vector, got ${data.resultType}`);
  return Object.fromEntries(data.result.map((r) => [JSON.stringify(r.metric), r.value[1]]));
}

describe('instant selectors: lookback and staleness', () => {
  const source = new MemorySeriesSource().add({ __name__: 'temp', gpu: '0' }, [[0, 40]]);

  it('returns the newest sample up to five minutes old, stamped with the evaluation time', async () => {
    const data = await instant(source, 'temp', 5 * m);
    expect(data).toEqual({
      resultType: 'vector',
      result: [{ metric: { __name__: 'temp', gpu: '0' }, value: [300, '40'] }],
    });
  });

  it('forgets a series once its newest sample is older than the lookback', async () => {
    expect(await values(source, 'temp', 5 * m + 1)).toEqual({});
  });

  it('ends a series at a staleness marker, and picks it up again at the next sample', async () => {
    const src = new MemorySeriesSource().add({ __name__: 'util' }, [
      [0, 1],
      { t: 30 * s, stale: true },
      [90 * s, 3],
    ]);
    expect(await values(src, 'util', 29 * s)).toEqual({ '{"__name__":"util"}': '1' });
    expect(await values(src, 'util', 60 * s)).toEqual({});
    expect(await values(src, 'util', 90 * s)).toEqual({ '{"__name__":"util"}': '3' });
  });

  it('leaves staleness markers out of range vectors', async () => {
    const src = new MemorySeriesSource().add({ __name__: 'util' }, [
      [0, 1],
      { t: 30 * s, stale: true },
      [90 * s, 3],
    ]);
    expect(await values(src, 'count_over_time(util[2m])', 90 * s)).toEqual({ '{}': '2' });
  });

  it('looks at the time given by offset and @', async () => {
    const src = new MemorySeriesSource().add({ __name__: 'x' }, every15s([0, 1, 2, 3, 4, 5, 6, 7, 8]));
    expect(await values(src, 'x offset 1m', 2 * m)).toEqual({ '{"__name__":"x"}': '4' });
    expect(await values(src, 'x @ 30', 2 * m)).toEqual({ '{"__name__":"x"}': '2' });
    const range = toPrometheusData(
      await new PromQLEngine({ source: src }).rangeQuery('x @ start()', 30 * s, 60 * s, 15 * s),
    );
    expect(range).toEqual({
      resultType: 'matrix',
      result: [
        {
          metric: { __name__: 'x' },
          values: [
            [30, '2'],
            [45, '2'],
            [60, '2'],
          ],
        },
      ],
    });
  });
});

describe('rate, increase and delta', () => {
  it('is exact for a counter sampled across the whole window', async () => {
    // 10 per 15 s is 2/3 per second; the window's first sample is 15 s after its start.
    const src = new MemorySeriesSource().add(
      { __name__: 'c' },
      every15s([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]),
    );
    expect(await values(src, 'rate(c[1m])', 3 * m)).toEqual({ '{}': formatValue(40 / 60) });
    expect(await values(src, 'increase(c[1m])', 3 * m)).toEqual({ '{}': '40' });
  });

  it('does not extrapolate a counter below zero', async () => {
    // Starting at 5 with a slope of 10 per 15 s, zero is 7.5 s before the first sample.
    const src = new MemorySeriesSource().add({ __name__: 'c' }, [
      [20 * s, 5],
      [35 * s, 15],
      [50 * s, 25],
    ]);
    expect(await values(src, 'increase(c[1m])', 60 * s)).toEqual({
      '{}': formatValue(20 * ((30 + 7.5 + 10) / 30)),
    });
  });

  it('counts a counter reset as a restart from zero', async () => {
    const src = new MemorySeriesSource().add({ __name__: 'c' }, every15s([100, 110, 120, 5, 15]));
    expect(await values(src, 'resets(c[1m])', 60 * s)).toEqual({ '{}': '1' });
    // 20 before the reset + 15 after, extrapolated over the 60 s window from the 60 s sampled.
    expect(await values(src, 'increase(c[1m])', 60 * s)).toEqual({ '{}': '35' });
    expect(await values(src, 'delta(c[1m])', 60 * s)).toEqual({ '{}': '-85' });
  });

  it('needs two samples', async () => {
    const src = new MemorySeriesSource().add({ __name__: 'c' }, [[0, 1]]);
    expect(await values(src, 'rate(c[5m])', m)).toEqual({});
    expect(await values(src, 'irate(c[5m])', m)).toEqual({});
  });

  it('drops the metric name, except for last_over_time', async () => {
    const src = new MemorySeriesSource().add({ __name__: 'c', job: 'a' }, every15s([1, 2, 3]));
    expect(await values(src, 'irate(c[1m])', 30 * s)).toEqual({ '{"job":"a"}': formatValue(1 / 15) });
    expect(await values(src, 'last_over_time(c[1m])', 30 * s)).toEqual({ '{"__name__":"c","job":"a"}': '3' });
  });
});

describe('vector matching', () => {
  const src = new MemorySeriesSource()
    .add({ __name__: 'util', host: 'a', gpu: '0' }, [[0, 50]])
    .add({ __name__: 'util', host: 'a', gpu: '1' }, [[0, 70]])
    .add({ __name__: 'power', host: 'a', gpu: '0' }, [[0, 300]])
    .add({ __name__: 'power', host: 'a', gpu: '1' }, [[0, 400]])
    .add({ __name__: 'host_info', host: 'a', rack: 'r1' }, [[0, 1]]);

  it('matches one-to-one on all labels but the name', async () => {
    expect(await values(src, 'power / util', 0)).toEqual({
      '{"gpu":"0","host":"a"}': '6',
      '{"gpu":"1","host":"a"}': formatValue(400 / 70),
    });
  });

  it('copies group_left labels from the one side', async () => {
    expect(await values(src, 'util * on(host) group_left(rack) host_info', 0)).toEqual({
      '{"gpu":"0","host":"a","rack":"r1"}': '50',
      '{"gpu":"1","host":"a","rack":"r1"}': '70',
    });
  });

  it('refuses many-to-many matching with the match group and both series', async () => {
    await expect(new PromQLEngine({ source: src }).instantQuery('util + on(host) power', 0)).rejects.toThrow(
      'found duplicate series for the match group {host="a"} on the right hand-side of the operation: [{__name__="power", gpu="1", host="a"}, {__name__="power", gpu="0", host="a"}];many-to-many matching not allowed: matching labels must be unique on one side',
    );
  });

  it('keeps the left side for and, unless, and adds the unmatched right side for or', async () => {
    expect(Object.keys(await values(src, 'util and on(gpu) (power > 350)', 0))).toEqual([
      '{"__name__":"util","gpu":"1","host":"a"}',
    ]);
    expect(Object.keys(await values(src, 'util unless on(gpu) (power > 350)', 0))).toEqual([
      '{"__name__":"util","gpu":"0","host":"a"}',
    ]);
    expect(Object.keys(await values(src, 'util > 60 or power', 0))).toEqual([
      '{"__name__":"util","gpu":"1","host":"a"}',
      '{"__name__":"power","gpu":"0","host":"a"}',
    ]);
  });

  it('filters with comparisons and answers 0/1 with bool', async () => {
    expect(await values(src, 'util > 60', 0)).toEqual({ '{"__name__":"util","gpu":"1","host":"a"}': '70' });
    expect(await values(src, 'util > bool 60', 0)).toEqual({
      '{"gpu":"0","host":"a"}': '0',
      '{"gpu":"1","host":"a"}': '1',
    });
  });
});

describe('operators and functions over a range, a series at a time', () => {
  // Series that come and go (gaps, a stale marker), two metrics that share every other label
  // (one label set once the name is dropped), and info series for group_left (host b's two
  // never at one step: a step finds one of them).
  const minute = 60 * s;
  const every = (from: number, to: number, f: (i: number) => number): [number, number][] => {
    const out: [number, number][] = [];
    for (let t = from; t <= to; t += 15 * s) out.push([t, f(t / (15 * s))]);
    return out;
  };
  const src = new MemorySeriesSource()
    .add(
      { __name__: 'util', host: 'a', gpu: '0' },
      every(0, 30 * minute, (i) => (i * 7) % 100),
    )
    .add(
      { __name__: 'util', host: 'a', gpu: '1' },
      every(10 * minute, 20 * minute, (i) => (i * 13) % 100),
    )
    .add({ __name__: 'util', host: 'b', gpu: '0' }, [
      ...every(0, 8 * minute, (i) => (i * 3) % 100),
      { t: 8 * minute + 15 * s, stale: true },
      ...every(22 * minute, 30 * minute, (i) => 100 - i),
    ])
    .add(
      { __name__: 'temp', host: 'a', gpu: '0' },
      every(0, 30 * minute, (i) => 40 + (i % 30)),
    )
    .add(
      { __name__: 'temp', host: 'b', gpu: '0' },
      every(12 * minute, 20 * minute, (i) => 60 + (i % 5)),
    )
    .add(
      { __name__: 'host_info', host: 'a', rack: 'r1' },
      every(0, 30 * minute, () => 1),
    )
    .add(
      { __name__: 'host_info', host: 'b', rack: 'r2' },
      every(0, 8 * minute, () => 1),
    )
    .add(
      { __name__: 'host_info', host: 'b', rack: 'r3' },
      every(16 * minute, 30 * minute, () => 1),
    );
  const engine = new PromQLEngine({ source: src });

  /** The range query's answer, and what instant queries at each of its steps answer. */
  async function rangeAndSteps(query: string, start: number, end: number, step: number) {
    const range = await engine.rangeQuery(query, start, end, step).then(toPrometheusData, toPrometheusError);
    const fromSteps = new Map<string, [number, string][]>();
    for (let t = start; t <= end; t += step) {
      const data = await engine.instantQuery(query, t).then(toPrometheusData, toPrometheusError);
      if ('httpStatus' in data) return { range, steps: data };
      if (data.resultType !== 'vector') throw new Error(`expected a vector, got ${data.resultType}`);
      for (const r of data.result) {
        const key = JSON.stringify(r.metric);
        fromSteps.set(key, [...(fromSteps.get(key) ?? []), r.value]);
      }
    }
    const steps = [...fromSteps].map(([metric, values]) => ({ metric: JSON.parse(metric), values }));
    return { range, steps: { resultType: 'matrix', result: steps } };
  }

  it.each([
    'util * 2',
    '100 - util',
    'util > 50',
    '50 >= util',
    'util > bool 50',
    'abs(util - 50)',
    'hour(timestamp(util))',
    'clamp(util, 20, 80)',
    'clamp_max(util, scalar(temp{host="b"}))',
    'round(util / 3, 0.5)',
    'timestamp(util * 1)',
    'sort_desc(util)',
    'sort(util > 30 or temp)',
    'label_replace(util, "node", "$1", "host", "(.*)")',
    'label_replace(util, "host", "x", "gpu", "1")',
    'temp / util',
    'util > temp',
    'util == bool on(host, gpu) temp',
    'util * on(host) group_left(rack) host_info',
    'host_info * on(host) group_right(rack) util',
    'util > 80 or util < 20',
    'util or temp',
    'util and temp > 50',
    'topk(2, util)',
    'bottomk by (host) (1, util or temp)',
    'topk(1 + time() / 60 % 3, util)',
    'quantile by (gpu) (0.75, util)',
    'count_values by (host) ("v", round(util / 20))',
    'util unless on(host) temp',
    'util unless temp{host="nope"}',
  ])('%s gives at each step what an instant query there gives', async (query) => {
    const { range, steps } = await rangeAndSteps(query, 0, 30 * minute, minute);
    const sorted = (d: typeof range) =>
      'resultType' in d && d.resultType === 'matrix'
        ? [...d.result].sort((a, b) => JSON.stringify(a.metric).localeCompare(JSON.stringify(b.metric)))
        : d;
    expect(sorted(range)).toEqual(sorted(steps as typeof range));
    expect('resultType' in range && range.resultType === 'matrix' && range.result.length).toBeGreaterThan(0);
  });

  it.each([
    // The names dropped, util and temp of one GPU are one label set where both have a value.
    ['{__name__=~"util|temp"} * 2', 'vector cannot contain metrics with the same labelset'],
    ['abs({__name__=~"util|temp"})', 'vector cannot contain metrics with the same labelset'],
    ['label_replace(util, "host", "x", "", "")', 'vector cannot contain metrics with the same labelset'],
    ['{__name__=~"util|temp"} + on(host, gpu) util', 'many-to-one matching must be explicit'],
    ['{__name__=~"util|temp"} * on(host) group_left host_info', 'multiple matches for labels'],
    ['temp + on(host) util', 'found duplicate series for the match group {host="a"}'],
  ])('%s fails as a step-by-step evaluation fails', async (query, message) => {
    const err = await engine.rangeQuery(query, 0, 30 * minute, minute).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionError);
    expect((err as Error).message).toContain(message);
  });

  it('times out an operator over a fleet on time, letting the event loop run meanwhile', async () => {
    // 10,000 series of 481 steps: each operator below is about 5 million step values.
    const fleet = new MemorySeriesSource();
    for (let i = 0; i < 10_000; i++) {
      fleet.add(
        { __name__: 'x', i: String(i) },
        every(0, 120 * minute, (k) => (i + k) % 100),
      );
    }
    const { elapsed, longestGap } = await timedOut(
      new PromQLEngine({ source: fleet, timeoutMs: 300 }),
      '(x * 2 + x) / x > 1 or x',
      120 * minute,
      15 * s,
    );
    // Each step counted by its values, not once (the clock went unread for 241 steps, and one
    // operator held the loop for seconds): what is measured here is far from both.
    expect(elapsed).toBeLessThan(3_000);
    expect(longestGap).toBeLessThan(500);
  });
});

describe('histogram_quantile over classic buckets', () => {
  const bucket = (le: string, v: number) => [{ __name__: 'd_bucket', le }, [[0, v]]] as const;
  const src = new MemorySeriesSource();
  for (const [labels, samples] of [
    bucket('0.1', 10),
    bucket('0.5', 60),
    bucket('1', 90),
    bucket('+Inf', 100),
  ])
    src.add(labels, [...samples] as [number, number][]);

  it('interpolates inside the bucket the rank falls in', async () => {
    // Rank 50 of 100 is 40 of the 50 observations in (0.1, 0.5].
    expect(await values(src, 'histogram_quantile(0.5, d_bucket)', 0)).toEqual({
      '{}': formatValue(0.1 + 0.4 * (40 / 50)),
    });
  });

  it('answers the highest finite bound for the top bucket, +Inf above 1, and NaN without +Inf', async () => {
    expect(await values(src, 'histogram_quantile(0.99, d_bucket)', 0)).toEqual({ '{}': '1' });
    expect(await values(src, 'histogram_quantile(2, d_bucket)', 0)).toEqual({ '{}': '+Inf' });
    expect(await values(src, 'histogram_quantile(0.5, d_bucket{le!="+Inf"})', 0)).toEqual({ '{}': 'NaN' });
  });

  // Answers of Prometheus 2.42 for the same series.
  it('finds the bucket of a rank as Prometheus does where counts hold NaN (a binary search)', async () => {
    const odd = new MemorySeriesSource();
    const add = (g: string, le: string, v: number) => odd.add({ __name__: 'h_bucket', g, le }, [[0, v]]);
    for (const [le, v] of [
      ['0.1', 1],
      ['1', NaN],
      ['2', 5],
      ['+Inf', 10],
    ] as const)
      add('nanmid', le, v);
    for (const [le, v] of [
      ['0.1', NaN],
      ['1', 10],
      ['2', 5],
      ['3', 12],
      ['+Inf', 20],
    ] as const)
      add('nanfirst', le, v);
    expect(await values(odd, 'histogram_quantile(0, h_bucket{g="nanmid"})', 0)).toEqual({
      '{"g":"nanmid"}': 'NaN',
    });
    expect(await values(odd, 'histogram_quantile(0.5, h_bucket{g="nanfirst"})', 0)).toEqual({
      '{"g":"nanfirst"}': '2.7142857142857144',
    });
  });

  it('reads bucket bounds as Go parses floats: hexadecimal only with its exponent, NaN unsigned', async () => {
    const bounds = new MemorySeriesSource();
    const add = (g: string, le: string, v: number) => bounds.add({ __name__: 'h_bucket', g, le }, [[0, v]]);
    add('hex', '0x1p3', 5);
    add('hex', '+Inf', 10);
    add('nohex', '0x10', 5);
    add('nohex', '+Inf', 10);
    add('nan', '1', 5);
    add('nan', '+NaN', 7);
    add('nan', '+Inf', 10);
    expect(await values(bounds, 'histogram_quantile(0.55, h_bucket)', 0)).toEqual({
      '{"g":"hex"}': '8',
      '{"g":"nan"}': '1',
      '{"g":"nohex"}': 'NaN',
    });
  });
});

describe('regular expressions', () => {
  const src = new MemorySeriesSource()
    .add({ __name__: 'x', host: 'host-1' }, [[0, 1]])
    .add({ __name__: 'x', host: 'Host-2' }, [[0, 2]])
    .add({ __name__: 'x', host: 'a\nb' }, [[0, 3]]);

  it('are anchored at both ends', async () => {
    expect(await values(src, 'x{host=~"host"}', 0)).toEqual({});
    expect(Object.keys(await values(src, 'x{host=~"host-.*"}', 0))).toEqual([
      '{"__name__":"x","host":"host-1"}',
    ]);
  });

  it('read RE2 syntax: (?i), . not matching a newline, escaped punctuation', async () => {
    expect(Object.keys(await values(src, 'x{host=~"(?i)HOST-\\\\d"}', 0))).toHaveLength(2);
    expect(await values(src, 'x{host=~"a.b"}', 0)).toEqual({});
    expect(Object.keys(await values(src, 'x{host=~"host\\\\-1"}', 0))).toHaveLength(1);
  });

  it('expand label_replace templates as Go does ($1x names group "1x")', async () => {
    const out = await values(
      src,
      'label_replace(x{host="host-1"}, "y", "$1x-${1}x", "host", "host-(.*)")',
      0,
    );
    expect(out).toEqual({ '{"__name__":"x","host":"host-1","y":"-1x"}': '1' });
    // Go reads no group number with a leading zero: $01 and ${01} name a group that is not there.
    const zero = await values(src, 'label_replace(x{host="host-1"}, "y", "$01|$1|${01}", "host", "(.*)")', 0);
    expect(zero).toEqual({ '{"__name__":"x","host":"host-1","y":"|host-1|"}': '1' });
  });
});

describe('aggregations', () => {
  const src = new MemorySeriesSource()
    .add({ __name__: 'u', host: 'a', gpu: '0' }, [[0, 10]])
    .add({ __name__: 'u', host: 'a', gpu: '1' }, [[0, 30]])
    .add({ __name__: 'u', host: 'b', gpu: '0' }, [[0, 20]])
    .add({ __name__: 'u', host: 'b', gpu: '1' }, [[0, NaN]]);

  it('group by and without', async () => {
    expect(await values(src, 'sum by (host) (u{gpu="0"})', 0)).toEqual({
      '{"host":"a"}': '10',
      '{"host":"b"}': '20',
    });
    expect(await values(src, 'max without (gpu) (u)', 0)).toEqual({
      '{"host":"a"}': '30',
      '{"host":"b"}': '20',
    });
  });

  it('orders topk from the top and lets NaN lose', async () => {
    const data = await instant(src, 'topk(2, u)', 0);
    expect(data.resultType === 'vector' && data.result.map((r) => r.value[1])).toEqual(['30', '20']);
  });

  it('counts values into a label', async () => {
    expect(await values(src, 'count_values("v", u{host="a"})', 0)).toEqual({
      '{"v":"10"}': '1',
      '{"v":"30"}': '1',
    });
  });
});

describe('number literals', () => {
  const engine = new PromQLEngine({ source: new MemorySeriesSource() });
  const scalar = async (query: string) => toPrometheusData(await engine.instantQuery(query, 0));

  it.each([
    ['5.', '5'],
    ['5. + 1', '6'],
    ['5.e2', '500'],
    ['-5.E-1', '-0.5'],
    ['0X1F', '31'],
    ['0x1f', '31'],
    ['017', '15'],
    ['08', '8'],
    ['010.', '10'],
    // Past int64, an octal-looking number is decimal (Go's ParseFloat after ParseInt fails).
    ['0777777777777777777777777', '777777777777777800000000'],
    ['0x7fffffffffffffff', '9223372036854776000'],
    ["# it's a comment, its quote opens no string\n5.", '5'],
    ['.5', '0.5'],
    ['vector(2.)', undefined],
  ])('reads %s as Prometheus does', async (query, value) => {
    const data = await scalar(query);
    if (value === undefined)
      expect(data).toMatchObject({ resultType: 'vector', result: [{ value: [0, '2'] }] });
    else expect(data).toEqual({ resultType: 'scalar', result: [0, value] });
  });

  it.each([
    ['1_000', '1:1: parse error: bad number or duration syntax: "1"'],
    [
      '0xffffffffffffffffff',
      '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "0xffffffffffffffffff": invalid syntax',
    ],
    ['1.5.', "1:4: parse error: unexpected character: '.'"],
    ['5.e', '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "5.e": invalid syntax'],
    ['5.atan2 1', '1:1: parse error: bad number or duration syntax: "5."'],
    ['0x', '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "0x": invalid syntax'],
    ['0x1g', '1:1: parse error: bad number or duration syntax: "0x1"'],
    ['0x1.8', '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "0x1.8": invalid syntax'],
    // Escapes, with Prometheus 2.42's messages, at the string's start.
    [
      'vector(1) + on() group_left count_values("\\xZZ", vector(1))',
      "1:42: parse error: illegal character U+005A 'Z' in escape sequence",
    ],
    ['count_values("\\x4", vector(1))', `1:14: parse error: illegal character U+0022 '"' in escape sequence`],
    [
      'count_values("\\uD800", vector(1))',
      '1:14: parse error: escape sequence is an invalid Unicode code point',
    ],
    [
      'count_values("a\\U0011FFFF", vector(1))',
      '1:14: parse error: escape sequence is an invalid Unicode code point',
    ],
    [
      'count_values("\\400", vector(1))',
      '1:14: parse error: escape sequence is an invalid Unicode code point',
    ],
    ['count_values("\\8", vector(1))', "1:14: parse error: unknown escape sequence U+0038 '8'"],
    ['count_values("\\d", vector(1))', "1:14: parse error: unknown escape sequence U+0064 'd'"],
  ])('refuses %s', async (query, message) => {
    await expect(engine.instantQuery(query, 0)).rejects.toThrow(message);
  });

  it.each([
    ['"\\xe2\\x82\\xac"', '€'],
    ['"\\x41\\101\\u0042\\U00000043\\a\\v"', 'AABC\x07\v'],
    ["'\\x41z\\''", "Az'"],
    ['"é\\"😀\\n"', 'é"😀\n'],
    // Bytes that are no UTF-8 print as Go prints them: each one U+FFFD.
    ['"\\xff\\xe2\\x82!"', '\ufffd\ufffd\ufffd!'],
    ['`\\x41`', '\\x41'],
  ])('reads the string %s as Go unquotes it, escapes standing for bytes', async (literal, value) => {
    const data = toPrometheusData(
      await engine.instantQuery(`label_replace(vector(1), "a", ${literal}, "", "")`, 0),
    );
    expect(data).toMatchObject({ resultType: 'vector', result: [{ metric: { a: value } }] });
  });
});

describe('numbers and durations, each where the other stands (as Prometheus 2.54 and later read them)', () => {
  // A sample every second for a minute.
  const source = new MemorySeriesSource().add(
    { __name__: 'x' },
    Array.from({ length: 61 }, (_, i): [number, number] => [i * s, i]),
  );
  const count = async (query: string) => (await values(source, query, 60 * s))['{}'];
  const parsed = (query: string) => parseExpr(query) as unknown as Record<string, unknown>;

  it.each([
    ['x[30]', 30_000],
    ['x[1.5]', 1_500],
    ['x[.5]', 500],
    ['x[5.]', 5_000],
    ['x[1e1]', 10_000],
    ['x[0x10]', 16_000],
    ['x[010]', 8_000], // octal, as Go's ParseInt reads it
    ['x[1.9999]', 1_999], // cut to the millisecond, as Go converts a float to a duration
    ['x[0.0015]', 1],
  ])('reads the range of %s as seconds: %s ms', (query, ms) => {
    expect(parsed(query)).toMatchObject({ kind: 'matrix_selector', rangeMs: ms });
  });

  it('selects over a number of seconds what the same duration selects', async () => {
    // Ranges hold both their ends here, as in Prometheus 2: [30s] at 60 s holds 31 samples.
    expect(await count('count_over_time(x[30])')).toBe('31');
    expect(await count('count_over_time(x[30s])')).toBe('31');
    expect(await count('count_over_time(x[010])')).toBe('9');
  });

  it('reads numbers as seconds in offsets and subqueries', async () => {
    expect(parsed('x offset 10')).toMatchObject({ kind: 'vector_selector', offsetMs: 10_000 });
    expect(parsed('x offset -1.5')).toMatchObject({ kind: 'vector_selector', offsetMs: -1_500 });
    expect(parsed('x offset 0.0004')).toMatchObject({ kind: 'vector_selector', offsetMs: 0 });
    expect(parsed('x offset 0')).toMatchObject({ kind: 'vector_selector', offsetMs: 0 });
    expect(parsed('x[30:5]')).toMatchObject({ kind: 'subquery', rangeMs: 30_000, stepMs: 5_000 });
    expect(await count('sum(x offset 10)')).toBe('50');
    expect(await count('count_over_time(x[30:5])')).toBe('7');
    expect(await count('count_over_time(x[30s:5s])')).toBe('7');
  });

  it.each([
    ['1h', '3600'],
    ['1h30m + 1', '5401'],
    ['-2s', '-2'],
    ['-1h ^ 2', '-12960000'],
    ['250ms * 4', '1'],
    ['time() - 1m', '0'],
  ])('reads the duration in %s as seconds', async (query, value) => {
    expect(toPrometheusData(await new PromQLEngine({ source }).instantQuery(query, 60 * s))).toEqual({
      resultType: 'scalar',
      result: [60, value],
    });
  });

  it('takes a duration as an aggregation parameter and as an @ time', async () => {
    const engine = new PromQLEngine({ source });
    const data = toPrometheusData(await engine.instantQuery('topk(1m, x)', 60 * s));
    expect(data).toMatchObject({ resultType: 'vector', result: [{ value: [60, '60'] }] });
    expect(parsed('x @ 1m')).toMatchObject({ at: { kind: 'timestamp', ms: 60_000 } });
    expect(parsed('x @ -1m')).toMatchObject({ at: { kind: 'timestamp', ms: -60_000 } });
    expect(await count('sum(x @ 30s)')).toBe('30');
  });

  it.each([
    ['x[1e10]', '1:3: parse error: duration out of range'],
    [
      'x[1e400]',
      '1:3: parse error: error parsing number: strconv.ParseFloat: parsing "1e400": value out of range',
    ],
    ['x[0]', 'duration must be greater than 0'],
    ['x[0.0001]', 'duration must be greater than 0'],
    ['x offset 0s', 'duration must be greater than 0'],
    ['x offset -0s', 'duration must be greater than 0'],
    ['x > 0s', '1:5: parse error: duration must be greater than 0'],
    ['x @ 0m', '1:5: parse error: duration must be greater than 0'],
    ['time() - 0h0m', '1:10: parse error: duration must be greater than 0'],
    ['x[5m:0s]', 'duration must be greater than 0'],
  ])('refuses %s', async (query, message) => {
    await expect(new PromQLEngine({ source }).instantQuery(query, 60 * s)).rejects.toThrow(message);
  });
});

describe('functions', () => {
  it('clamps as Go does: an infinity wins over a NaN bound, and the overflow of topk reads as Go writes it', async () => {
    const source = new MemorySeriesSource()
      .add({ __name__: 'up_inf' }, every15s([Infinity]))
      .add({ __name__: 'down_inf' }, every15s([-Infinity]));
    const engine = new PromQLEngine({ source });
    const value = async (query: string) =>
      (toPrometheusData(await engine.instantQuery(query, 15 * s)) as { result: { value: unknown[] }[] })
        .result[0]?.value[1];
    expect(await value('clamp_min(up_inf, NaN)')).toBe('+Inf');
    expect(await value('clamp_max(down_inf, NaN)')).toBe('-Inf');
    expect(await value('clamp(up_inf, NaN, +Inf)')).toBe('+Inf');
    expect(await value('clamp(up_inf, NaN, NaN)')).toBe('NaN');
    expect(await value('clamp_min(down_inf, NaN)')).toBe('NaN');
    await expect(engine.instantQuery('topk(1e20, up_inf)', 15 * s)).rejects.toThrow(
      'Scalar value 1e+20 overflows int64',
    );
  });

  it('evaluates every function the parser accepts (Prometheus 2 has no other)', async () => {
    const source = new MemorySeriesSource().add({ __name__: 'm', a: 'x' }, every15s([1, 2, 3, 4, 5]));
    const engine = new PromQLEngine({ source });
    const argument = { vector: 'm', matrix: 'm[1m]', scalar: '0.5', string: '"a"' } as const;
    const special: Record<string, string> = {
      label_replace: 'label_replace(m, "b", "$1", "a", "(.*)")',
      label_join: 'label_join(m, "b", ",", "a")',
    };
    const failed: string[] = [];
    for (const [name, f] of FUNCTIONS) {
      const query = special[name] ?? `${name}(${f.argTypes.map((t) => argument[t]).join(', ')})`;
      await engine.instantQuery(query, 60 * s).catch((e: Error) => failed.push(`${query}: ${e.message}`));
    }
    expect(FUNCTIONS.size).toBeGreaterThan(60);
    expect(failed).toEqual([]);
  });
});

describe('errors', () => {
  const engine = new PromQLEngine({
    source: new MemorySeriesSource().add({ __name__: 'x' }, every15s([1, 2, 3])),
  });

  it.each([
    [
      'rate(x)',
      '1:6: parse error: expected type range vector in call to function "rate", got instant vector',
    ],
    ['', '1:1: parse error: no expression found in input'],
    ['  # only a comment\n', '1:1: parse error: no expression found in input'],
    ['x + bool 1', '1:3: parse error: bool modifier can only be used on comparison operators'],
    ['{job=~".*"}', '1:1: parse error: vector selector must contain at least one non-empty matcher'],
    [
      'abs(x) offset 5m',
      '1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery',
    ],
    ['x @ 1 @ 2', '1:1: parse error: @ <timestamp> may not be set multiple times'],
    ['x offset 1m [5m]', '1:13: parse error: no offset modifiers allowed before range'],
    ['topk(x, x)', '1:6: parse error: expected type scalar in aggregation parameter, got instant vector'],
    ['x and 1', '1:1: parse error: set operator "and" not allowed in binary scalar expression'],
    ['nofunc(x)', '1:1: parse error: unknown function with name "nofunc"'],
    // Past the largest double, as Prometheus says (1e-400 is 0 there too, no error).
    [
      '1e400',
      '1:1: parse error: error parsing number: strconv.ParseFloat: parsing "1e400": value out of range',
    ],
    [
      'x + -1e400',
      '1:6: parse error: error parsing number: strconv.ParseFloat: parsing "1e400": value out of range',
    ],
    ['x\n  + foo(', '2:5: parse error: unknown function with name "foo"'],
    // What Prometheus' lexer finds before its parser does, in its words.
    ['sum(x', '1:6: parse error: unclosed left parenthesis'],
    ['rate(x[5m]', '1:11: parse error: unclosed left parenthesis'],
    ['x{a="b"}[5m', '1:12: parse error: unclosed left bracket'],
    ['x{a=~"b"', '1:9: parse error: unexpected end of input inside braces'],
    ['x{a="b', '1:5: parse error: unterminated quoted string'],
    ['x{a="b\n"}', '1:5: parse error: unterminated quoted string'],
    ['x{a=`b', '1:5: parse error: unterminated raw string'],
    ['x )', "1:4: parse error: unexpected right parenthesis ')'"],
    ['x]', "1:2: parse error: unexpected right bracket ']'"],
    ['x}', "1:2: parse error: unexpected character: '}'"],
    ['!x', "1:1: parse error: unexpected character after '!': 'x'"],
    ['x{a=")"} + (x', '1:14: parse error: unclosed left parenthesis'],
    ['x +', '1:4: parse error: unexpected end of input'],
    ['x # (\n+', '2:2: parse error: unexpected end of input'],
    ['x offset', '1:9: parse error: unexpected end of input in offset, expected duration'],
    ['x @', '1:4: parse error: unexpected end of input in @, expected timestamp'],
    ['sum(x) by', '1:10: parse error: unexpected end of input in grouping opts, expected "("'],
    // Numbers and durations as Prometheus' lexer and parser read them.
    ['x offset 5M', '1:10: parse error: bad number or duration syntax: "5"'],
    ['x offset 5mm', '1:10: parse error: bad number or duration syntax: "5mm"'],
    ['x[5M]', '1:3: parse error: bad duration syntax: "5"'],
    ['x[1h30]', '1:3: parse error: bad duration syntax: "1h30"'],
    ['rate(x[1m1m])', '1:8: parse error: not a valid duration string: "1m1m"'],
    ['x[1.5m]', '1:3: parse error: not a valid duration string: "1.5m"'],
    ['x[2h1d]', '1:3: parse error: not a valid duration string: "2h1d"'],
    ['3x', '1:1: parse error: bad number or duration syntax: "3"'],
    ['x > 1e', '1:5: parse error: error parsing number: strconv.ParseFloat: parsing "1e": invalid syntax'],
    // The token the parser did not expect, named as Prometheus names it, with what it was reading.
    ['x{a="b" c="d"}', '1:9: parse error: unexpected identifier "c" in label matching, expected "," or "}"'],
    ['g{,}', '1:3: parse error: unexpected "," in label matching, expected identifier or "}"'],
    ['x{a}', '1:4: parse error: unexpected "}" in label matching, expected label matching operator'],
    ['x{a=b}', '1:5: parse error: unexpected identifier "b" in label matching, expected string'],
    ['g @ time()', '1:5: parse error: unexpected identifier "time" in @, expected timestamp'],
    ['rate(x[5m] offset)', '1:18: parse error: unexpected ")" in offset, expected duration'],
    ['x offset -', '1:11: parse error: unexpected end of input in offset, expected duration'],
    ['1 +* 2', '1:4: parse error: unexpected <op:*>'],
    ['1 2', '1:3: parse error: unexpected number "2"'],
    ['{a="b"} 12345678901234', '1:9: parse error: unexpected number "1234567890"...'],
    ['x{a="b"} "str"', '1:10: parse error: unexpected string "\\"str\\""'],
    ['time() start', '1:8: parse error: unexpected "start"'],
    ['sum(x,)', '1:6: parse error: trailing commas not allowed in function call args'],
    ['x[5m:1m:1m]', "1:8: parse error: unexpected colon ':'"],
    // Inside a range's or subquery's brackets, as Prometheus 2's lexer and grammar read them.
    ['x[5m:foo]', "1:6: parse error: unexpected colon 'f'"],
    ['x[5m foo]', "1:7: parse error: unexpected colon 'o'"],
    ['x[foo]', '1:3: parse error: bad duration syntax: ""'],
    ['x[]', '1:3: parse error: missing unit character in duration'],
    ['x[-5m]', '1:3: parse error: missing unit character in duration'],
    ['x[5m[1m]]', "1:5: parse error: unexpected left bracket '['"],
    ['x[5m 5m]', '1:6: parse error: unexpected duration "5m" in subquery or range, expected ":" or "]"'],
    ['x[5m + 1m]', '1:6: parse error: unexpected <op:+> in subquery or range, expected ":" or "]"'],
    [
      'x[5m:"a"]',
      '1:6: parse error: unexpected string "\\"a\\"" in subquery selector, expected duration or "]"',
    ],
    ['x[5m:1m 5m]', '1:9: parse error: unexpected duration "5m" in subquery selector, expected "]"'],
    ['x[5m f]', "1:6: parse error: unexpected character: 'f', expected ':'"],
    // Characters no token starts with, outside braces and inside them.
    ['x $ y', "1:3: parse error: unexpected character: '$'"],
    ['x =~ y', "1:3: parse error: unexpected character after '=': '~'"],
    ['x !', "1:3: parse error: unexpected character after '!': '\uFFFD'"],
    ['x{a:b="c"}', "1:4: parse error: unexpected character inside braces: ':'"],
    ['x{a!}', "1:4: parse error: unexpected character after '!' inside braces: '}'"],
    ['x{a="b" {', "1:9: parse error: unexpected left brace '{'"],
    ['x{a="b" # }', '1:12: parse error: unexpected end of input inside braces'],
    // Names Prometheus' lexer reads as something else.
    ['atan2', '1:1: parse error: unexpected <op:atan2>'],
    ['x + ATAN2{a="b"}', '1:5: parse error: unexpected <op:ATAN2>'],
    ['sum by (Inf) (x)', '1:9: parse error: unexpected number "Inf" in grouping opts, expected label'],
    ['x + on(nan) x', '1:8: parse error: unexpected number "nan" in grouping opts, expected label'],
    ['sum by (without) (x)', '1:9: parse error: unexpected <without> in grouping opts, expected label'],
    ['x @ Inf', '1:1: parse error: timestamp out of bounds for @ modifier: +Inf'],
    ['x @ 1e20', '1:1: parse error: timestamp out of bounds for @ modifier: 100000000000000000000.000000'],
    [
      'x @ -1e25',
      '1:1: parse error: timestamp out of bounds for @ modifier: -10000000000000000905969664.000000',
    ],
    // RE2's refusals, in Go's words, of the pattern as Prometheus anchors it.
    ['x{a=~"("}', '1:3: parse error: error parsing regexp: missing closing ): `^(?:()$`'],
    ['x{a=~"a{1,1001}"}', '1:3: parse error: error parsing regexp: invalid repeat count: `{1,1001}`'],
    ['x{a=~"(a{500}){3}"}', '1:3: parse error: error parsing regexp: invalid repeat count: `{3}`'],
    ['x{a=~"[a"}', '1:3: parse error: error parsing regexp: missing closing ]: `[a)$`'],
  ])('%s is bad_data: %s', async (query, message) => {
    const err = await engine.instantQuery(query, 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadDataError);
    expect((err as Error).message).toBe(message);
    expect(toPrometheusError(err)).toEqual({
      httpStatus: 400,
      body: { status: 'error', errorType: 'bad_data', error: message },
    });
  });

  it('refuses a megabyte of brackets at the 1,001st, before the grammar reads it (seconds before)', async () => {
    for (const [query, message] of [
      ['('.repeat(1_000_000), '1:1001: parse error: the query nests more than 1000 brackets deep'],
      ['abs('.repeat(250_000), '1:4004: parse error: the query nests more than 1000 brackets deep'],
    ]) {
      const err = await engine.instantQuery(query as string, 0).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadDataError);
      expect((err as Error).message).toBe(message);
    }
    // 1,000 deep is a query; brackets in strings and comments are not nesting.
    const deep = `${'('.repeat(1_000)}x${')'.repeat(1_000)} + on() group_left x{x!="${'('.repeat(2_000)}"} # ${'['.repeat(2_000)}`;
    expect(toPrometheusData(await engine.instantQuery(deep, 30 * s))).toEqual({
      resultType: 'vector',
      result: [{ metric: {}, value: [30, '6'] }],
    });
  });

  it("takes a chain of a thousand operators, past the grammar's own limit, and refuses the 1,001st", async () => {
    // `or` of selectors as dashboards generate them: lezer alone gave up at the ~415th.
    const selectors = Array.from({ length: 1_000 }, (_, i) => `x{i="${i}"}`).join(' or ');
    expect(selectors.length).toBeGreaterThan(8_000);
    expect(toPrometheusData(await engine.instantQuery(`count(${selectors} or vector(1))`, 30 * s))).toEqual({
      resultType: 'vector',
      result: [{ metric: {}, value: [30, '1'] }],
    });
    // The deepest tree the bounds allow: 1,000 brackets around 1,000 operators, every walk of it.
    const ones = Array.from({ length: 1_001 }, () => '1').join('+');
    expect(
      toPrometheusData(await engine.instantQuery(`${'('.repeat(1_000)}${ones}${')'.repeat(1_000)}`, 0)),
    ).toEqual({
      resultType: 'scalar',
      result: [0, '1001'],
    });
    const range = await engine.rangeQuery(
      `vector(0) - ${Array.from({ length: 1_000 }, () => 'vector(1)').join(' - ')}`,
      0,
      60 * s,
      30 * s,
    );
    expect(toPrometheusData(range)).toEqual({
      resultType: 'matrix',
      result: [
        {
          metric: {},
          values: [
            [0, '-1000'],
            [30, '-1000'],
            [60, '-1000'],
          ],
        },
      ],
    });
    // Operators in strings, comments, matchers and durations are not counted; signs are.
    const quoted = `${Array.from({ length: 999 }, () => '1').join('+')} + count_over_time(x{x!="${'-'.repeat(2_000)}"}[5m:1m] offset 1m) # ${'+'.repeat(2_000)}`;
    expect(toPrometheusData(await engine.instantQuery(quoted, 0))).toEqual({
      resultType: 'vector',
      result: [],
    });
    for (const [query, at] of [
      [`${ones}+1`, 2_002],
      [`${'-'.repeat(1_001)}1`, 1_001],
      [Array.from({ length: 1_002 }, (_, i) => `x{i="${i}"}`).join(' or '), 13_903],
    ] as const) {
      const err = await engine.instantQuery(query, 0).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BadDataError);
      expect((err as Error).message).toBe(
        `1:${at}: parse error: the query has more than 1000 binary operators`,
      );
    }
  });

  it('bounds the label values label_join and label_replace make: a short query cannot double one into gigabytes', async () => {
    // 1,000 characters doubled 20 times would be a value of ~1 GB (and a 500: invalid string length).
    let doubling = `label_replace(vector(1), "a", "${'x'.repeat(1_000)}", "", "")`;
    for (let i = 0; i < 20; i++) doubling = `label_join(${doubling}, "a", "", "a", "a")`;
    const joined = await engine.instantQuery(doubling, 0).catch((e: unknown) => e);
    expect(joined).toBeInstanceOf(ExecutionError);
    expect((joined as Error).message).toBe(
      'label_join(): the value of label "a" would be longer than 65,536 characters',
    );
    expect(toPrometheusError(joined).httpStatus).toBe(422);
    // "$1" a thousand times over a 100-character match: 100,000 characters.
    const hundred = `label_replace(vector(1), "b", "${'y'.repeat(100)}", "", "")`;
    const replaced = await engine
      .instantQuery(`label_replace(${hundred}, "a", "${'$1'.repeat(1_000)}", "b", "(.*)")`, 0)
      .catch((e: unknown) => e);
    expect((replaced as Error).message).toBe(
      'label_replace(): the value of label "a" would be longer than 65,536 characters',
    );
    // Up to the bound, as Prometheus makes them.
    let kept = `label_replace(vector(1), "a", "${'x'.repeat(1_024)}", "", "")`;
    for (let i = 0; i < 6; i++) kept = `label_join(${kept}, "a", "", "a", "a")`;
    const data = toPrometheusData(await engine.instantQuery(kept, 0));
    expect(data.resultType === 'vector' && data.result[0]?.metric['a']).toBe('x'.repeat(65_536));
  });

  it('bounds what one label_join makes across its vector', async () => {
    const many = new MemorySeriesSource();
    for (let i = 0; i < 300; i++) many.add({ __name__: 'w', i: String(i) }, every15s([1]));
    // 300 values of 30,000 characters made (9 M), then 300 of 60,000 joined from them (18 M).
    const wide = `label_replace(w, "a", "${'x'.repeat(30_000)}", "", "")`;
    const err = await new PromQLEngine({ source: many })
      .instantQuery(`label_join(${wide}, "b", "", "a", "a")`, 0)
      .catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      'label_join(): the values of label "b" would hold more than 16,777,216 characters in all',
    );
  });

  it('refuses range queries over 11,000 points per series', async () => {
    await expect(engine.rangeQuery('x', 0, 11_001 * s, s)).rejects.toThrow(
      'exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)',
    );
    await expect(engine.rangeQuery('x', 0, 11_000 * s, s)).resolves.toMatchObject({ resultType: 'matrix' });
  });

  it('stops at the max samples budget with an execution error (422)', async () => {
    const small = new PromQLEngine({
      source: new MemorySeriesSource().add({ __name__: 'x' }, every15s([1, 2, 3, 4])),
      maxSamples: 5,
    });
    const err = await small.rangeQuery('x', 0, 45 * s, 5 * s).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TooManySamplesError);
    expect(toPrometheusError(err)).toEqual({
      httpStatus: 422,
      body: {
        status: 'error',
        errorType: 'execution',
        error: 'query processing would load too many samples into memory in query execution',
      },
    });
  });

  it('refuses a subquery with more steps than the budget holds before reading or allocating them', async () => {
    const selects: SelectHints[] = [];
    const source: SeriesSource = {
      async *select(_matchers, hints) {
        selects.push(hints);
        yield* [];
      },
      labelNames: async () => [],
      labelValues: async () => [],
    };
    const small = new PromQLEngine({ source, maxSamples: 1_000 });
    for (const query of ['max_over_time(vector(1)[10y:1ms])', 'max_over_time(x[30d:1ms])', 'x[1s:1ms]']) {
      await expect(small.instantQuery(query, 100 * 365 * 86_400 * s)).rejects.toThrow(TooManySamplesError);
    }
    expect(selects).toEqual([]);
    // A subquery whose steps fit is evaluated.
    const fits = await small.instantQuery('count_over_time(vector(1)[400ms:1ms])', 0);
    expect(toPrometheusData(fits)).toEqual({
      resultType: 'vector',
      result: [{ metric: {}, value: [0, '401'] }],
    });
  });

  it('times out (503) by its clock, and is canceled by an abort signal', async () => {
    let now = 0;
    const source: SeriesSource = {
      async *select() {
        now += 10_000;
        yield* [];
      },
      labelNames: async () => [],
      labelValues: async () => [],
    };
    const slow = new PromQLEngine({ source, timeoutMs: 5_000, now: () => now });
    const err = await slow.instantQuery('sum(x) + sum(y)', 0).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueryTimeoutError);
    expect(toPrometheusError(err)).toEqual({
      httpStatus: 503,
      body: { status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' },
    });

    const controller = new AbortController();
    controller.abort();
    await expect(engine.instantQuery('x', 0, { signal: controller.signal })).rejects.toBeInstanceOf(
      QueryCanceledError,
    );
  });

  it('times out a query whose steps each read a day of points on time, letting the event loop run meanwhile', async () => {
    // 8,641 steps, each a quantile over 86,401 points: about 750 million points in all.
    const { elapsed, longestGap } = await timedOut(
      new PromQLEngine({ source: new MemorySeriesSource(), timeoutMs: 300 }),
      'quantile_over_time(0.5, vector(1)[1d:1s])',
      86_400 * s,
      10 * s,
    );
    // Checked by the points it read, not once per 1024 steps (11 s before, with a 1 s timeout),
    // and never holding the loop for long: what is measured here is far from both.
    expect(elapsed).toBeLessThan(3_000);
    expect(longestGap).toBeLessThan(500);
  });

  it('bounds the step cells a query makes by max samples, not only the points it holds', async () => {
    const engine = new PromQLEngine({ source: new MemorySeriesSource(), maxSamples: 1_000_000 });
    // A series per distinct value, each as long as the grid: 11,001 x 11,001 cells for 11,001
    // points (over a gigabyte of arrays before).
    const used = process.memoryUsage().heapUsed;
    await expect(
      engine.rangeQuery('count_values("x", vector(time()))', 0, 11_000 * s, s),
    ).rejects.toBeInstanceOf(TooManySamplesError);
    expect(process.memoryUsage().heapUsed - used).toBeLessThan(200 * 1024 * 1024);
    // The same query over fewer steps fits, and answers a series per value.
    const data = toPrometheusData(await engine.rangeQuery('count_values("x", vector(time()))', 0, 99 * s, s));
    expect(data.resultType === 'matrix' && data.result.length).toBe(100);
  });

  it('reports many-to-one without group_left as an execution error', async () => {
    const src = new MemorySeriesSource()
      .add({ __name__: 'a', g: '1', i: '1' }, [[0, 1]])
      .add({ __name__: 'a', g: '1', i: '2' }, [[0, 1]])
      .add({ __name__: 'b', g: '1' }, [[0, 1]]);
    const err = await new PromQLEngine({ source: src })
      .instantQuery('a + on(g) b', 0)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExecutionError);
    expect((err as Error).message).toBe(
      'multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)',
    );
  });
});

describe('results as Prometheus spells them', () => {
  it('writes values like Go: no exponents, NaN, +Inf, -Inf', () => {
    expect([1e21, 1.5e-7, 0.1 + 0.2, NaN, Infinity, -Infinity, -0, 42].map(formatValue)).toEqual([
      '1000000000000000000000',
      '0.00000015',
      '0.30000000000000004',
      'NaN',
      '+Inf',
      '-Inf',
      '-0',
      '42',
    ]);
  });

  it('answers scalars and strings as [time, "value"]', async () => {
    const source = new MemorySeriesSource();
    expect(await instant(source, '1 / 0', 1500)).toEqual({ resultType: 'scalar', result: [1.5, '+Inf'] });
    expect(await instant(source, '"hi"', 1500)).toEqual({ resultType: 'string', result: [1.5, 'hi'] });
  });
});

describe('the source interface', () => {
  it('gets the time range, step, range and enclosing function of each selector', async () => {
    const seen: SelectHints[] = [];
    const mem = new MemorySeriesSource().add({ __name__: 'x' }, every15s([1, 2, 3]));
    const source: SeriesSource = {
      select: (matchers, hints) => {
        seen.push(hints);
        return mem.select(matchers, hints);
      },
      labelNames: () => mem.labelNames(),
      labelValues: (name) => mem.labelValues(name),
    };
    await new PromQLEngine({ source }).rangeQuery(
      'sum by (job) (rate(x[5m] offset 1m)) + x',
      10 * m,
      20 * m,
      m,
    );
    expect(seen).toEqual([
      { startMs: 4 * m, endMs: 19 * m, stepMs: m, rangeMs: 5 * m, func: 'rate' },
      { startMs: 5 * m, endMs: 20 * m, stepMs: m, rangeMs: 0 },
    ]);
    expect(await mem.labelNames()).toEqual(['__name__']);
    expect(await mem.labelValues('__name__')).toEqual(['x']);
  });
});
