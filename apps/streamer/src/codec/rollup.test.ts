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

interface NaiveBucket {
  count: number;
  sum: number;
  min: number;
  max: number;
  last: number;
  abs: number;
  irregular: number;
  first: number;
  firstAt: number;
  lastAt: number;
}

/** The rollup the slow, obvious way; with edges, a bucket for every sample. */
function naive(block: Block, bucketUs: number, edges = false) {
  const out = new Map<number, NaiveBucket>();
  const ms = (i: number) => Math.floor((block.times[i] as number) / 1000);
  block.times.forEach((t, i) => {
    const v = block.values[i] as number;
    const key = Math.floor(t / bucketUs) * bucketUs;
    if (!Number.isFinite(v) && !edges) return;
    let b = out.get(key);
    if (!b) {
      b = {
        count: 0,
        sum: 0,
        min: 0,
        max: 0,
        last: 0,
        abs: 0,
        irregular: 0,
        first: 0,
        firstAt: 0,
        lastAt: 0,
      };
      out.set(key, b);
    }
    if (!Number.isFinite(v) || (i > 0 && ms(i) === ms(i - 1))) b.irregular++;
    if (!Number.isFinite(v)) return;
    if (b.count === 0) Object.assign(b, { min: v + 0, max: v + 0, first: v, firstAt: (t - key) / 1000 });
    Object.assign(b, {
      count: b.count + 1,
      sum: b.sum + v,
      min: Math.min(b.min, v) + 0,
      max: Math.max(b.max, v) + 0,
      last: v,
      lastAt: (t - key) / 1000,
      abs: b.abs + Math.abs(v),
    });
  });
  return out;
}

function asMap(r: Rollup | null) {
  const out = new Map<number, Partial<NaiveBucket>>();
  r?.times.forEach((t, i) =>
    out.set(t, {
      count: r.count[i] as number,
      sum: r.sum[i] as number,
      // -0 and 0 are the same minimum.
      min: (r.min[i] as number) + 0,
      max: (r.max[i] as number) + 0,
      last: r.last[i] as number,
      ...(r.edges
        ? {
            irregular: r.edges.irregular[i] as number,
            first: r.edges.first[i] as number,
            firstAt: r.edges.firstAt[i] as number,
            lastAt: r.edges.lastAt[i] as number,
          }
        : {}),
    }),
  );
  return out;
}

const block = fc
  .record({
    start: fc.integer({ min: 1_700_000_000, max: 1_800_000_000 }),
    // Steps of seconds, and now and then of microseconds (two samples in one millisecond).
    steps: fc.array(
      fc.oneof(
        { weight: 9, arbitrary: fc.integer({ min: 1, max: 90 }).map((s) => s * 1_000_000) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 1_500 }) },
      ),
      { maxLength: 400 },
    ),
    decimals: fc.integer({ min: 0, max: 6 }),
  })
  .chain(({ start, steps, decimals }) => {
    const times = [start * 1_000_000];
    for (const step of steps) times.push((times.at(-1) as number) + step);
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
  it('hold per bucket the count, sum, min, max and last of the finite values; with edges, a bucket for every sample with its count of non-finite ones, first and last', () => {
    fc.assert(
      fc.property(block, fc.constantFrom(MINUTE_US, HOUR_US), fc.boolean(), (b, bucketUs, edges) => {
        const got = asMap(rollUp(b, bucketUs, { edges }));
        const want = naive(b, bucketUs, edges);
        expect([...got.keys()]).toEqual([...want.keys()]);
        for (const [key, w] of want) {
          const g = got.get(key)!;
          const { abs, irregular, first, firstAt, lastAt, ...values } = w;
          expect({ ...g, sum: 0 }).toEqual({
            ...values,
            sum: 0,
            ...(edges ? { irregular, first, firstAt, lastAt } : {}),
          });
          // Rollups add decimals exactly; the plain float sum here drifts by a few ulps of the total.
          expect(Math.abs((g.sum as number) - w.sum)).toBeLessThanOrEqual(1e-12 * Math.max(1, abs));
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
      fc.property(block, fc.boolean(), fc.integer({ min: 0, max: 999 }), (b, edges, micros) => {
        // Times finer than a millisecond (as a CSV may carry) come back to the microsecond.
        const times = b.times.map((t, i) => (i % 2 ? t + micros : t));
        const r = rollUp({ times, values: b.values }, edges ? HOUR_US : MINUTE_US, { edges });
        if (!r) return;
        const back = decodeRollup(encodeRollup(r));
        expect(back).toEqual(r);
        if (!edges) return;
        const lastOf = new Map<number, number>();
        times.forEach((t, i) => {
          if (Number.isFinite(b.values[i])) lastOf.set(Math.floor(t / HOUR_US) * HOUR_US, t);
        });
        back.times.forEach((start, i) => {
          if (back.count[i] === 0) return;
          expect(start + Math.round((back.edges?.lastAt[i] as number) * 1000)).toBe(lastOf.get(start));
        });
      }),
      { numRuns: 300 },
    );
  });

  it('of the pieces of a series, combined in time order, equal the rollup of the whole, edges included', () => {
    fc.assert(
      fc.property(block, fc.integer({ min: 1, max: 50 }), (b, cut) => {
        const at = Math.min(cut, b.times.length);
        // Chunks are cut at whole seconds, never inside a millisecond.
        const ms = (i: number) => Math.floor((b.times[i] as number) / 1000);
        if (at > 0 && at < b.times.length && ms(at - 1) === ms(at)) return;
        const head = { times: b.times.slice(0, at), values: b.values.slice(0, at) };
        const tail = { times: b.times.slice(at), values: b.values.slice(at) };
        const parts = [head, tail]
          .filter((p) => p.times.length > 0)
          .map((p) => rollUp(p, HOUR_US, { edges: true }));
        const combined = asMap(combineRollups(parts.filter((p): p is Rollup => p !== null)));
        const whole = asMap(rollUp(b, HOUR_US, { edges: true }));
        expect([...combined.keys()]).toEqual([...whole.keys()]);
        for (const [key, w] of whole) {
          const c = combined.get(key)!;
          expect({ ...c, sum: 0 }).toEqual({ ...w, sum: 0 });
          const abs = naive(b, HOUR_US, true).get(key)!.abs;
          expect(Math.abs((c.sum as number) - (w.sum as number))).toBeLessThanOrEqual(
            1e-12 * Math.max(1, abs),
          );
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keep their edges through combining only where every part has them', () => {
    const times = Float64Array.from([0, 30, 60, 90], (s) => HOUR_US * 100 + s * 1_000_000);
    const values = Float64Array.from([NaN, 2, 3, 4]);
    const head = { times: times.slice(0, 2), values: values.slice(0, 2) };
    const tail = { times: times.slice(2), values: values.slice(2) };
    const both = combineRollups([
      rollUp(head, HOUR_US, { edges: true }) as Rollup,
      rollUp(tail, HOUR_US, { edges: true }) as Rollup,
    ]);
    expect(both?.edges).toEqual({
      irregular: Float64Array.from([1]),
      first: Float64Array.from([2]),
      firstAt: Float64Array.from([30_000]),
      lastAt: Float64Array.from([90_000]),
    });
    expect(both?.count).toEqual(Float64Array.from([3]));
    const older = combineRollups([
      rollUp(head, HOUR_US) as Rollup,
      rollUp(tail, HOUR_US, { edges: true }) as Rollup,
    ]);
    expect(older?.edges).toBeUndefined();
    expect(decodeRollup(encodeRollup(older as Rollup)).edges).toBeUndefined();
  });

  it('with edges, keep a bucket whose samples are all NaN or infinite, counting none of them as values', () => {
    const times = Float64Array.from([0, 30], (s) => HOUR_US * 100 + s * 1_000_000);
    const r = rollUp({ times, values: Float64Array.from([NaN, Infinity]) }, HOUR_US, { edges: true });
    expect(r && { count: r.count[0], irregular: r.edges?.irregular[0] }).toEqual({ count: 0, irregular: 2 });
    expect(rollUp({ times, values: Float64Array.from([NaN, Infinity]) }, HOUR_US)).toBeNull();
  });
});
