import { type Block, ColumnDecoder, decimalScale, decodeColumns, encodeColumns } from './block-codec';

export const MINUTE_US = 60_000_000;
export const HOUR_US = 3_600_000_000;

/**
 * Per-bucket count, sum, min, max and last of a series' finite values (NaN and infinities are left
 * out, as the aggregates of the query API leave them out). Buckets are aligned to the epoch; a
 * rollup made from one chunk holds partial buckets where the chunk cuts a bucket, and partial
 * buckets combine (counts and sums add, min of mins, max of maxes, last of the later one).
 */
export interface Rollup {
  /** Bucket starts, microseconds since the epoch. */
  times: Float64Array;
  count: Float64Array;
  sum: Float64Array;
  min: Float64Array;
  max: Float64Array;
  last: Float64Array;
}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/** The rollup of a block's samples into buckets of `bucketUs`; null when none is finite. */
export function rollUp(block: Block, bucketUs: number): Rollup | null {
  const finite: number[] = [];
  for (let i = 0; i < block.values.length; i++) if (Number.isFinite(block.values[i])) finite.push(i);
  if (finite.length === 0) return null;
  // Sums of exporter decimals are kept exact: added as integers at their common decimal scale.
  const k = decimalScale(Float64Array.from(finite, (i) => (block.values[i] as number) || 0));
  const p = k >= 0 ? (POW10[k] as number) : 1;
  const times: number[] = [];
  const count: number[] = [];
  const sum: number[] = [];
  const min: number[] = [];
  const max: number[] = [];
  const last: number[] = [];
  let exact = 0;
  let exactOk = k >= 0;
  for (const i of finite) {
    const us = block.times[i] as number;
    const v = block.values[i] as number;
    const bucket = Math.floor(us / bucketUs) * bucketUs;
    const b = times.length - 1;
    if (b < 0 || times[b] !== bucket) {
      if (b >= 0) sum[b] = exactOk ? exact / p : (sum[b] as number);
      times.push(bucket);
      count.push(1);
      sum.push(v);
      min.push(v);
      max.push(v);
      last.push(v);
      exact = k >= 0 ? Math.round(v * p) : 0;
      exactOk = k >= 0;
      continue;
    }
    count[b] = (count[b] as number) + 1;
    sum[b] = (sum[b] as number) + v;
    if (v < (min[b] as number)) min[b] = v;
    if (v > (max[b] as number)) max[b] = v;
    last[b] = v;
    if (exactOk) {
      exact += Math.round(v * p);
      if (Math.abs(exact) > Number.MAX_SAFE_INTEGER) exactOk = false;
    }
  }
  const b = times.length - 1;
  sum[b] = exactOk ? exact / p : (sum[b] as number);
  return {
    times: Float64Array.from(times),
    count: Float64Array.from(count),
    sum: Float64Array.from(sum),
    min: Float64Array.from(min),
    max: Float64Array.from(max),
    last: Float64Array.from(last),
  };
}

export function encodeRollup(r: Rollup): Buffer {
  return encodeColumns(r.times, [r.count, r.sum, r.min, r.max, r.last]);
}

export function decodeRollup(data: Uint8Array): Rollup {
  const { times, columns } = decodeColumns(data);
  const [count, sum, min, max, last] = columns as [
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
    Float64Array,
  ];
  return { times, count, sum, min, max, last };
}

/** Reads many encoded rollups through the same arrays: bucket i of the last read is times[i], count[i], ... */
export class RollupReader {
  private readonly decoder = new ColumnDecoder();
  n = 0;

  read(data: Uint8Array): number {
    this.n = this.decoder.decode(data);
    return this.n;
  }

  get times(): Float64Array {
    return this.decoder.times;
  }
  get count(): Float64Array {
    return this.decoder.columns[0] as Float64Array;
  }
  get sum(): Float64Array {
    return this.decoder.columns[1] as Float64Array;
  }
  get min(): Float64Array {
    return this.decoder.columns[2] as Float64Array;
  }
  get max(): Float64Array {
    return this.decoder.columns[3] as Float64Array;
  }
}

/** Partial rollups, in time order, merged bucket by bucket into one. */
export function combineRollups(parts: Rollup[]): Rollup | null {
  const acc = new Map<number, { count: number; sum: number; min: number; max: number; last: number }>();
  for (const r of parts) {
    for (let i = 0; i < r.times.length; i++) {
      const t = r.times[i] as number;
      const b = acc.get(t);
      if (!b) {
        acc.set(t, {
          count: r.count[i] as number,
          sum: r.sum[i] as number,
          min: r.min[i] as number,
          max: r.max[i] as number,
          last: r.last[i] as number,
        });
      } else {
        b.count += r.count[i] as number;
        b.sum += r.sum[i] as number;
        b.min = Math.min(b.min, r.min[i] as number);
        b.max = Math.max(b.max, r.max[i] as number);
        b.last = r.last[i] as number;
      }
    }
  }
  if (acc.size === 0) return null;
  const times = [...acc.keys()].sort((a, b) => a - b);
  const pick = (f: (b: { count: number; sum: number; min: number; max: number; last: number }) => number) =>
    Float64Array.from(times, (t) => f(acc.get(t) as never));
  return {
    times: Float64Array.from(times),
    count: pick((b) => b.count),
    sum: pick((b) => b.sum),
    min: pick((b) => b.min),
    max: pick((b) => b.max),
    last: pick((b) => b.last),
  };
}
