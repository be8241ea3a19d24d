import fc from 'fast-check';
import type { Block } from './block-codec';
import {
  combineRollups,
  decodeRollup,
  encodeRollup,
  HOUR_US,
  MINUTE_US,
  type Rollup,
  rollUp,
} from './rollup';

/** The rollup the slow, obvious way. */
function naive(block: Block, bucketUs: number) {
  const out = new Map<
    number,
    { count: number; sum: number; min: number; max: number; last: number; abs: number }
  >();
  block.times.forEach((t, i) => {
    const v = block.values[i] as number;
    if (!Number.isFinite(v)) return;
    const key = Math.floor(t / bucketUs) * bucketUs;
    const b = out.get(key);
    if (!b) out.set(key, { count: 1, sum: v, min: v + 0, max: v + 0, last: v, abs: Math.abs(v) });
    else
      Object.assign(b, {
        count: b.count + 1,
        sum: b.sum + v,
        min: Math.min(b.min, v) + 0,
        max: Math.max(b.max, v) + 0,
        last: v,
        abs: b.abs + Math.abs(v),
      });
  });
  return out;
}

function asMap(r: Rollup | null) {
  const out = new Map<number, { count: number; sum: number; min: number; max: number; last: number }>();
  r?.times.forEach((t, i) =>
    out.set(t, {
      count: r.count[i] as number,
      sum: r.sum[i] as number,
      // -0 and 0 are the same minimum.
      min: (r.min[i] as number) + 0,
      max: (r.max[i] as number) + 0,
      last: r.last[i] as number,
    }),
  );
  return out;
}

const block = fc
  .record({
    start: fc.integer({ min: 1_700_000_000, max: 1_800_000_000 }),
    steps: fc.array(fc.integer({ min: 1, max: 90 }), { maxLength: 400 }),
    decimals: fc.integer({ min: 0, max: 6 }),
  })
  .chain(({ start, steps, decimals }) => {
    const times = [start * 1_000_000];
    for (const step of steps) times.push((times.at(-1) as number) + step * 1_000_000);
    const value = fc.oneof(
      {
        weight: 9,
        arbitrary: fc
          .integer({ min: -10_000_000, max: 10_000_000 })
          .map((n) => Number((n / 10 ** decimals).toFixed(decimals))),
      },
      { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, -0) },
    );
    return fc
      .array(value, { minLength: times.length, maxLength: times.length })
      .map((values): Block => ({ times: Float64Array.from(times), values: Float64Array.from(values) }));
  });

describe('rollups', () => {
  it('hold per bucket the count, sum, min, max and last of the finite values', () => {
    fc.assert(
      fc.property(block, fc.constantFrom(MINUTE_US, HOUR_US), (b, bucketUs) => {
        const got = asMap(rollUp(b, bucketUs));
        const want = naive(b, bucketUs);
        expect([...got.keys()]).toEqual([...want.keys()]);
        for (const [key, w] of want) {
          const g = got.get(key)!;
          expect({ ...g, sum: 0 }).toEqual({ ...w, sum: 0, abs: undefined });
          // Rollups add decimals exactly; the plain float sum here drifts by a few ulps of the total.
          expect(Math.abs(g.sum - w.sum)).toBeLessThanOrEqual(1e-12 * Math.max(1, w.abs));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('add exporter decimals exactly', () => {
    const times = Float64Array.from({ length: 60 }, (_, i) => 1_780_000_020_000_000 + i * 1_000_000);
    const values = Float64Array.from({ length: 60 }, () => 0.1);
    expect(rollUp({ times, values }, MINUTE_US)?.sum[0]).toBe(6);
  });

  it('come back from their encoding as they went in', () => {
    fc.assert(
      fc.property(block, (b) => {
        const r = rollUp(b, MINUTE_US);
        if (r) expect(decodeRollup(encodeRollup(r))).toEqual(r);
      }),
      { numRuns: 300 },
    );
  });

  it('of the pieces of a series, combined in time order, equal the rollup of the whole', () => {
    fc.assert(
      fc.property(block, fc.integer({ min: 1, max: 50 }), (b, cut) => {
        const at = Math.min(cut, b.times.length);
        const head = { times: b.times.slice(0, at), values: b.values.slice(0, at) };
        const tail = { times: b.times.slice(at), values: b.values.slice(at) };
        const parts = [head, tail].filter((p) => p.times.length > 0).map((p) => rollUp(p, HOUR_US));
        const combined = asMap(combineRollups(parts.filter((p): p is Rollup => p !== null)));
        const whole = asMap(rollUp(b, HOUR_US));
        expect([...combined.keys()]).toEqual([...whole.keys()]);
        for (const [key, w] of whole) {
          const c = combined.get(key)!;
          expect({ ...c, sum: 0 }).toEqual({ ...w, sum: 0 });
          const abs = naive(b, HOUR_US).get(key)!.abs;
          expect(Math.abs(c.sum - w.sum)).toBeLessThanOrEqual(1e-12 * Math.max(1, abs));
        }
      }),
      { numRuns: 300 },
    );
  });
});
