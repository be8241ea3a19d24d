import fc from 'fast-check';
import { aggregate, aggregateColumns, COLUMN_OPS, type Grouping, type StepColumn } from './aggregate';
import type { AggregateOp } from './ast';
import type { VSample } from './functions';
import { labelsFromRecord, labelsKey } from './labels';

/** What the engine made before aggregateColumns: `aggregate` at each step, series in order of first answer. */
function stepByStep(op: AggregateOp, grouping: Grouping, inputs: StepColumn[], steps: number) {
  const out = new Map<string, { labels: unknown; values: number[]; present: number[] }>();
  for (let i = 0; i < steps; i++) {
    const vec: VSample[] = inputs
      .filter((s) => s.present[i])
      .map((s) => ({ labels: s.labels, value: s.values[i] as number }));
    for (const r of aggregate(op, grouping, undefined, vec)) {
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
  it.each([...COLUMN_OPS])('%s answers every step exactly as aggregate does, bit for bit', (op) => {
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
  });

  it('refuses an aggregation it cannot evaluate', () => {
    expect(() => aggregateColumns('topk', { labels: [], without: false }, [], 1, () => undefined)).toThrow(
      /topk/,
    );
  });
});
