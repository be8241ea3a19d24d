import fc from 'fast-check';
import { aggregate, aggregateColumns, COLUMN_OPS, type Grouping, type StepColumn } from './aggregate';
import type { AggregateOp } from './ast';
import type { VSample } from './functions';
import {
  keepLabels,
  keyWithLabels,
  keyWithoutLabels,
  type Labels,
  labelsFromRecord,
  labelsKey,
  METRIC_NAME,
  withoutLabels,
} from './labels';

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
      expect(() => aggregate(op, { labels: [], without: false }, undefined, [])).toThrow(op);
  });

  it('refuses an aggregation it cannot evaluate', () => {
    expect(() => aggregateColumns('topk', { labels: [], without: false }, [], 1, () => undefined)).toThrow(
      /topk/,
    );
  });
});
