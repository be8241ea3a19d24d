import fc from 'fast-check';
import {
  aggregateColumns,
  COLUMN_OPS,
  type Grouping,
  STEP_OPS,
  StepAggregation,
  type StepColumn,
} from './aggregate';
import type { AggregateOp } from './ast';
import { formatGoFloat, formatValue } from './format';
import type { VSample } from './functions';
import { goSortArray } from './go-sort';
import {
  isValidLabelName,
  keepLabels,
  keyWithLabels,
  keyWithoutLabels,
  type Labels,
  labelsFromRecord,
  labelsKey,
  METRIC_NAME,
  setLabel,
  withoutLabels,
} from './labels';
import { quantile } from './quantile';

/**
 * One step of a COLUMN_OPS aggregation as the engine evaluated it before aggregateColumns, with
 * Prometheus's arithmetic: a running sum, an incremental mean for `avg`, Welford for
 * `stddev`/`stdvar`, NaN replaced by any value in `min`/`max`; groups in the order their first
 * sample came in.
 */
function oneStep(op: AggregateOp, grouping: Grouping, vec: VSample[]): VSample[] {
  const names = new Set(grouping.labels);
  const dropped = new Set([...grouping.labels, METRIC_NAME]);
  const groups = new Map<string, { labels: Labels; value: number; mean: number; count: number }>();
  for (const s of vec) {
    const key = grouping.without ? keyWithoutLabels(s.labels, dropped) : keyWithLabels(s.labels, names);
    const group = groups.get(key);
    if (!group) {
      const labels = grouping.without ? withoutLabels(s.labels, dropped) : keepLabels(s.labels, names);
      const value = op === 'stddev' || op === 'stdvar' ? 0 : op === 'group' ? 1 : s.value;
      groups.set(key, { labels, value, mean: s.value, count: 1 });
      continue;
    }
    switch (op) {
      case 'sum':
        group.value += s.value;
        break;
      case 'avg': {
        group.count++;
        if (!Number.isFinite(group.mean) && !Number.isNaN(group.mean)) {
          if (!Number.isFinite(s.value) && !Number.isNaN(s.value) && group.mean > 0 === s.value > 0) break;
          if (Number.isFinite(s.value)) break;
        }
        group.mean += s.value / group.count - group.mean / group.count;
        break;
      }
      case 'max':
        if (group.value < s.value || Number.isNaN(group.value)) group.value = s.value;
        break;
      case 'min':
        if (group.value > s.value || Number.isNaN(group.value)) group.value = s.value;
        break;
      case 'count':
        group.count++;
        break;
      case 'stddev':
      case 'stdvar': {
        group.count++;
        const delta = s.value - group.mean;
        group.mean += delta / group.count;
        group.value += delta * (s.value - group.mean);
        break;
      }
    }
  }
  return [...groups.values()].map((g) => ({
    labels: g.labels,
    value:
      op === 'avg'
        ? g.mean
        : op === 'count'
          ? g.count
          : op === 'stdvar'
            ? g.value / g.count
            : op === 'stddev'
              ? Math.sqrt(g.value / g.count)
              : g.value,
  }));
}

/** What the engine made before aggregateColumns: `oneStep` at each step, series in order of first answer. */
function stepByStep(op: AggregateOp, grouping: Grouping, inputs: StepColumn[], steps: number) {
  const out = new Map<string, { labels: unknown; values: number[]; present: number[] }>();
  for (let i = 0; i < steps; i++) {
    const vec: VSample[] = inputs
      .filter((s) => s.present[i])
      .map((s) => ({ labels: s.labels, value: s.values[i] as number }));
    for (const r of oneStep(op, grouping, vec)) {
      const key = labelsKey(r.labels);
      let series = out.get(key);
      if (!series)
        out.set(
          key,
          (series = {
            labels: r.labels,
            values: new Array(steps).fill(0),
            present: new Array(steps).fill(0),
          }),
        );
      series.values[i] = r.value;
      series.present[i] = 1;
    }
  }
  return [...out.values()];
}

const value = fc.oneof(
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 1e308, -1e308, 5e-324),
  fc.integer({ min: -1000, max: 1000 }),
);

describe('aggregateColumns', () => {
  it.each([...COLUMN_OPS])(
    '%s answers every step exactly as the per-step arithmetic does, bit for bit',
    (op) => {
      fc.assert(
        fc.property(
          fc.array(
            fc.record({
              host: fc.constantFrom('a', 'b', 'c'),
              gpu: fc.constantFrom('0', '1'),
              cells: fc.array(fc.option(value, { nil: undefined }), { minLength: 6, maxLength: 6 }),
            }),
            { maxLength: 12 },
          ),
          fc.constantFrom<Grouping>(
            { labels: [], without: false },
            { labels: ['host'], without: false },
            { labels: ['gpu'], without: true },
            { labels: ['host', 'gpu'], without: false },
          ),
          (rows, grouping) => {
            const inputs: StepColumn[] = rows.map((r, k) => ({
              labels: labelsFromRecord({ __name__: 'm', host: r.host, gpu: r.gpu, k: String(k) }),
              values: Float64Array.from(r.cells, (c) => c ?? 0),
              present: Uint8Array.from(r.cells, (c) => (c === undefined ? 0 : 1)),
            }));
            let checks = 0;
            const got = aggregateColumns(op, grouping, inputs, 6, () => checks++).map((s) => ({
              labels: s.labels,
              values: [...s.values],
              present: [...s.present],
              points: s.points,
            }));
            const want = stepByStep(op, grouping, inputs, 6);
            expect(got).toHaveLength(want.length);
            got.forEach((g, k) => {
              expect(g.labels).toEqual(want[k]?.labels);
              expect(g.present).toEqual(want[k]?.present);
              g.values.forEach((v, i) => {
                if (g.present[i])
                  expect(
                    Object.is(v, want[k]?.values[i]) || (Number.isNaN(v) && Number.isNaN(want[k]?.values[i])),
                  ).toBe(true);
              });
            });
            got.forEach((g) => expect(g.points).toBe(g.present.filter(Boolean).length));
            expect(checks).toBe(inputs.length);
          },
        ),
        { numRuns: 300 },
      );
    },
  );

  it('is the only evaluator of its aggregations', () => {
    for (const op of COLUMN_OPS)
      expect(() => new StepAggregation(op, { labels: [], without: false }, [])).toThrow(op);
  });

  it('refuses an aggregation it cannot evaluate', () => {
    expect(() => aggregateColumns('topk', { labels: [], without: false }, [], 1, () => undefined)).toThrow(
      /topk/,
    );
  });
});

/**
 * One step of topk, bottomk, quantile or count_values as the engine evaluated it before
 * StepAggregation (a vector of samples a step, a group key a sample), with Prometheus's arithmetic:
 * Go's container/heap for topk and bottomk, groups in the order their first sample came in.
 */
function oneStepWithParam(
  op: AggregateOp,
  grouping: Grouping,
  param: number | string,
  vec: VSample[],
): VSample[] {
  let k = 0;
  if (op === 'topk' || op === 'bottomk') {
    const f = param as number;
    if (!(f <= 9223372036854774784 && f >= -9223372036854775808))
      throw new Error(`Scalar value ${formatGoFloat(f)} overflows int64`);
    k = Math.trunc(f);
    if (k < 1) return [];
  }
  let names = grouping.labels;
  if (op === 'count_values') {
    if (!isValidLabelName(param as string)) throw new Error(`invalid label name ${JSON.stringify(param)}`);
    if (!grouping.without) names = [...names, param as string];
  }
  const kept = new Set(names);
  const dropped = new Set([...names, METRIC_NAME]);
  const less = (a: VSample, b: VSample) =>
    Number.isNaN(a.value) || (op === 'topk' ? a.value < b.value : a.value > b.value);
  const groups = new Map<string, { labels: Labels; count: number; heap: VSample[]; values: number[] }>();
  for (const s of vec) {
    const labels =
      op === 'count_values' ? setLabel(s.labels, param as string, formatValue(s.value)) : s.labels;
    const key = grouping.without ? keyWithoutLabels(labels, dropped) : keyWithLabels(labels, kept);
    const g = groups.get(key);
    if (!g) {
      const own = grouping.without ? withoutLabels(labels, dropped) : keepLabels(labels, kept);
      groups.set(key, { labels: own, count: 1, heap: [s], values: [s.value] });
      continue;
    }
    g.count++;
    g.values.push(s.value);
    const h = g.heap;
    if (op !== 'topk' && op !== 'bottomk') continue;
    const worst = h[0] as VSample;
    if (
      h.length < k ||
      (op === 'topk' ? worst.value < s.value : worst.value > s.value) ||
      Number.isNaN(worst.value)
    ) {
      if (h.length === k) {
        if (k === 1) {
          h[0] = s;
          continue;
        }
        // heap.Pop: the last to the top, sifted down, then dropped.
        const n = h.length - 1;
        [h[0], h[n]] = [h[n] as VSample, h[0] as VSample];
        for (let i = 0; ;) {
          let j = 2 * i + 1;
          if (j >= n) break;
          if (j + 1 < n && less(h[j + 1] as VSample, h[j] as VSample)) j++;
          if (!less(h[j] as VSample, h[i] as VSample)) break;
          [h[i], h[j]] = [h[j] as VSample, h[i] as VSample];
          i = j;
        }
        h.pop();
      }
      // heap.Push: appended, sifted up.
      h.push(s);
      for (let j = h.length - 1; j > 0;) {
        const i = Math.trunc((j - 1) / 2);
        if (!less(h[j] as VSample, h[i] as VSample)) break;
        [h[i], h[j]] = [h[j] as VSample, h[i] as VSample];
        j = i;
      }
    }
  }
  return [...groups.values()].flatMap((g) => {
    if (op === 'count_values') return [{ labels: g.labels, value: g.count }];
    if (op === 'quantile') return [{ labels: g.labels, value: quantile(param as number, g.values) }];
    // sort.Sort(sort.Reverse(heap)), as Go sorts it.
    const h = g.heap;
    goSortArray(h, (a, b) => less(b, a));
    return h.map((s) => ({ labels: s.labels, value: s.value }));
  });
}

/** Series gathered by label set, step after step, with the error a step meets (as the engine gathers them). */
function gathered(steps: number, answer: (i: number, put: (labels: Labels, value: number) => void) => void) {
  const out = new Map<string, { labels: Labels; values: number[]; present: number[] }>();
  try {
    for (let i = 0; i < steps; i++) {
      answer(i, (labels, value) => {
        const key = labelsKey(labels);
        let series = out.get(key);
        if (!series)
          out.set(key, (series = { labels, values: Array(steps).fill(0), present: Array(steps).fill(0) }));
        if (series.present[i]) throw new Error('vector cannot contain metrics with the same labelset');
        series.values[i] = value;
        series.present[i] = 1;
      });
    }
  } catch (error) {
    return { error: (error as Error).message };
  }
  return { series: [...out.values()] };
}

describe('StepAggregation', () => {
  const ks = [1, 2, 3, 13, 0, -1, 2.5, NaN, Infinity, 1e19];
  const qs = [0, 0.25, 0.5, 0.9, 1, -0.5, 1.5, NaN];
  const valueLabels = ['v', 'host', 'k', METRIC_NAME, '1bad'];
  const cases = fc.record({
    op: fc.constantFrom(...STEP_OPS),
    rows: fc.array(
      fc.record({
        host: fc.constantFrom('a', 'b', 'c'),
        gpu: fc.constantFrom('0', '1'),
        // Few distinct values, so ties are common: they are where heaps and sorts differ.
        cells: fc.array(
          fc.option(
            fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity, 0, -0, 1, 2), fc.integer({ min: -3, max: 3 })),
            {
              nil: undefined,
            },
          ),
          { minLength: 5, maxLength: 5 },
        ),
      }),
      { maxLength: 30 },
    ),
    grouping: fc.constantFrom<Grouping>(
      { labels: [], without: false },
      { labels: ['host'], without: false },
      { labels: ['gpu'], without: true },
      { labels: ['host', 'v'], without: false },
      { labels: ['v', 'k'], without: true },
      { labels: ['k'], without: true },
      { labels: [], without: true },
    ),
    params: fc.array(fc.nat({ max: 99 }), { minLength: 5, maxLength: 5 }),
  });

  it('answers every step as the per-step evaluation did: values, order, ties and errors', () => {
    fc.assert(
      fc.property(cases, ({ op, rows, grouping, params }) => {
        const inputs: StepColumn[] = rows.map((r, k) => ({
          labels: labelsFromRecord({ __name__: 'm', host: r.host, gpu: r.gpu, k: String(k) }),
          values: Float64Array.from(r.cells, (c) => c ?? 0),
          present: Uint8Array.from(r.cells, (c) => (c === undefined ? 0 : 1)),
        }));
        const label = valueLabels[(params[0] as number) % valueLabels.length] as string;
        const param = (i: number) =>
          op === 'quantile'
            ? (qs[(params[i] as number) % qs.length] as number)
            : (ks[(params[i] as number) % ks.length] as number);
        const want = gathered(5, (i, put) => {
          const vec = inputs
            .filter((s) => s.present[i])
            .map((s) => ({ labels: s.labels, value: s.values[i] as number }));
          for (const r of oneStepWithParam(op, grouping, op === 'count_values' ? label : param(i), vec))
            put(r.labels, r.value);
        });
        // One aggregation for every step, as the engine runs it: state kept between steps shows.
        let aggregation: StepAggregation | undefined;
        const answered = gathered(5, (i, put) => {
          aggregation ??= new StepAggregation(
            op,
            grouping,
            inputs,
            op === 'count_values' ? label : undefined,
          );
          aggregation.step(i, param(i), (_output, labels, value) => put(labels, value));
        });
        expect(answered.error).toEqual(want.error);
        expect(answered.series?.length).toEqual(want.series?.length);
        answered.series?.forEach((g, n) => {
          const w = want.series?.[n];
          expect(g.labels).toEqual(w?.labels);
          expect(g.present).toEqual(w?.present);
          g.values.forEach((v, i) => expect(Object.is(v, w?.values[i])).toBe(true));
        });
      }),
      { numRuns: 2000 },
    );
  });

  it('gives an output the same number at every step, one per label set', () => {
    const inputs: StepColumn[] = [0, 1, 2].map((k) => ({
      labels: labelsFromRecord({ __name__: 'm', k: String(k) }),
      values: Float64Array.from([k, 2 - k, k]),
      present: Uint8Array.from([1, 1, 1]),
    }));
    const seen = new Map<number, string>();
    const aggregation = new StepAggregation('count_values', { labels: [], without: false }, inputs, 'v');
    for (let i = 0; i < 3; i++)
      aggregation.step(i, NaN, (output, labels) => {
        const key = labelsKey(labels);
        expect(seen.get(output) ?? key).toBe(key);
        seen.set(output, key);
      });
    expect(new Set(seen.values()).size).toBe(seen.size);
    expect(seen.size).toBe(3);
  });
});
