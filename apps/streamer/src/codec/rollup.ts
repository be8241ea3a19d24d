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
  /** Kept by 1-hour rollups (see RollupEdges); 1-hour rollups written before them have none. */
  edges?: RollupEdges;
}

/**
 * What lets a rollup stand for its raw samples exactly in PromQL (see
 * services/prometheus-rollups.ts): with edges there is a bucket for every sample, finite or not
 * (where none is finite, count is 0 and the other columns 0), and each bucket tells how many of
 * its samples are irregular (not finite, or sharing a millisecond), and its first and last finite
 * sample with their times. Where none is irregular, those are the bucket's first and last
 * samples. A few values an hour: 1-hour rollups keep them, 1-minute ones do not.
 */
export interface RollupEdges {
  /**
   * Samples in the bucket that it cannot stand for: NaN or infinite (left out of the other
   * columns), or in the same millisecond as the sample before (PromQL keeps one sample a
   * millisecond). 0 in nearly every bucket.
   */
  irregular: Float64Array;
  first: Float64Array;
  /**
   * Milliseconds from the bucket's start to `first` (with a fraction where a source sent finer
   * times): offsets in milliseconds vary by a few units where microseconds vary by thousands, and
   * encode in fewer bits.
   */
  firstAt: Float64Array;
  /** Milliseconds from the bucket's start to `last`. */
  lastAt: Float64Array;
}

const POW10 = [1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

interface Bucket {
  start: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  last: number;
  irregular: number;
  first: number;
  firstAt: number;
  lastAt: number;
}

/**
 * The rollup of a block's samples into buckets of `bucketUs`, with `edges` its edges; null when
 * it has no bucket (no finite value, without edges). Compaction runs it twice per block: it
 * writes into typed arrays sized for the worst case (a bucket per sample), no object per bucket.
 */
export function rollUp(block: Block, bucketUs: number, options: { edges?: boolean } = {}): Rollup | null {
  const { times, values } = block;
  const edges = options.edges === true;
  const length = values.length;
  let finite = 0;
  for (let i = 0; i < length; i++) if (Number.isFinite(values[i])) finite++;
  const scaled = new Float64Array(finite);
  for (let i = 0, j = 0; i < length; i++)
    if (Number.isFinite(values[i])) scaled[j++] = (values[i] as number) || 0;
  // Sums of exporter decimals are kept exact: added as integers at their common decimal scale.
  const k = decimalScale(scaled);
  const p = k >= 0 ? (POW10[k] as number) : 1;
  const out = {
    times: new Float64Array(length),
    count: new Float64Array(length),
    sum: new Float64Array(length),
    min: new Float64Array(length),
    max: new Float64Array(length),
    last: new Float64Array(length),
    irregular: new Float64Array(edges ? length : 0),
    first: new Float64Array(edges ? length : 0),
    firstAt: new Float64Array(edges ? length : 0),
    lastAt: new Float64Array(edges ? length : 0),
  };
  let b = -1;
  let previousMs = NaN;
  let exact = 0;
  let exactOk = k >= 0;
  const closeSum = () => {
    if (b >= 0 && (out.count[b] as number) > 0 && exactOk) out.sum[b] = exact / p;
  };
  for (let i = 0; i < length; i++) {
    const v = values[i] as number;
    const isFinite = Number.isFinite(v);
    if (!isFinite && !edges) continue;
    const us = times[i] as number;
    const ms = Math.floor(us / 1000);
    const sameMs = ms === previousMs;
    previousMs = ms;
    const start = Math.floor(us / bucketUs) * bucketUs;
    if (b < 0 || out.times[b] !== start) {
      closeSum();
      b++;
      out.times[b] = start;
      exact = 0;
      exactOk = k >= 0;
    }
    if (edges && (sameMs || !isFinite)) out.irregular[b]++;
    if (!isFinite) continue;
    const c = out.count[b] as number;
    if (c === 0) {
      out.min[b] = out.max[b] = v;
      if (edges) {
        out.first[b] = v;
        out.firstAt[b] = (us - start) / 1000;
      }
    } else {
      if (v < (out.min[b] as number)) out.min[b] = v;
      if (v > (out.max[b] as number)) out.max[b] = v;
    }
    out.count[b] = c + 1;
    out.sum[b] += v;
    out.last[b] = v;
    if (edges) out.lastAt[b] = (us - start) / 1000;
    if (exactOk) {
      exact += Math.round(v * p);
      if (Math.abs(exact) > Number.MAX_SAFE_INTEGER) exactOk = false;
    }
  }
  closeSum();
  if (b < 0) return null;
  const n = b + 1;
  return {
    times: out.times.slice(0, n),
    count: out.count.slice(0, n),
    sum: out.sum.slice(0, n),
    min: out.min.slice(0, n),
    max: out.max.slice(0, n),
    last: out.last.slice(0, n),
    ...(edges
      ? {
          edges: {
            irregular: out.irregular.slice(0, n),
            first: out.first.slice(0, n),
            firstAt: out.firstAt.slice(0, n),
            lastAt: out.lastAt.slice(0, n),
          },
        }
      : {}),
  };
}

function fromBuckets(buckets: Bucket[], edges: boolean): Rollup {
  const pick = (f: (b: Bucket) => number) => Float64Array.from(buckets, f);
  return {
    times: pick((b) => b.start),
    count: pick((b) => b.count),
    sum: pick((b) => b.sum),
    min: pick((b) => b.min),
    max: pick((b) => b.max),
    last: pick((b) => b.last),
    ...(edges
      ? {
          edges: {
            irregular: pick((b) => b.irregular),
            first: pick((b) => b.first),
            firstAt: pick((b) => b.firstAt),
            lastAt: pick((b) => b.lastAt),
          },
        }
      : {}),
  };
}

/** The columns of a rollup's column block, in order: the edges' four follow the first five. */
export const ROLLUP_COLUMN = {
  count: 0,
  sum: 1,
  min: 2,
  max: 3,
  last: 4,
  irregular: 5,
  first: 6,
  firstAt: 7,
  lastAt: 8,
} as const;

export function encodeRollup(r: Rollup): Buffer {
  const columns = [r.count, r.sum, r.min, r.max, r.last];
  if (r.edges) columns.push(r.edges.irregular, r.edges.first, r.edges.firstAt, r.edges.lastAt);
  return encodeColumns(r.times, columns);
}

export function decodeRollup(data: Uint8Array): Rollup {
  const { times, columns: c } = decodeColumns(data);
  const col = (i: number) => c[i] as Float64Array;
  const C = ROLLUP_COLUMN;
  return {
    times,
    count: col(C.count),
    sum: col(C.sum),
    min: col(C.min),
    max: col(C.max),
    last: col(C.last),
    ...(c.length > C.lastAt
      ? {
          edges: {
            irregular: col(C.irregular),
            first: col(C.first),
            firstAt: col(C.firstAt),
            lastAt: col(C.lastAt),
          },
        }
      : {}),
  };
}

/**
 * Reads many encoded rollups through the same arrays: bucket i of the last read is times[i],
 * count[i], ... A bucket with count 0 (edges: no finite sample) has no min, max or sum.
 */
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
    return this.decoder.columns[ROLLUP_COLUMN.count] as Float64Array;
  }
  get sum(): Float64Array {
    return this.decoder.columns[ROLLUP_COLUMN.sum] as Float64Array;
  }
  get min(): Float64Array {
    return this.decoder.columns[ROLLUP_COLUMN.min] as Float64Array;
  }
  get max(): Float64Array {
    return this.decoder.columns[ROLLUP_COLUMN.max] as Float64Array;
  }
}

/** Partial rollups, in time order, merged bucket by bucket into one; with edges where all have them. */
export function combineRollups(parts: Rollup[]): Rollup | null {
  const acc = new Map<number, Bucket>();
  const edges = parts.every((r) => r.edges);
  for (const r of parts) {
    for (let i = 0; i < r.times.length; i++) {
      const part: Bucket = {
        start: r.times[i] as number,
        count: r.count[i] as number,
        sum: r.sum[i] as number,
        min: r.min[i] as number,
        max: r.max[i] as number,
        last: r.last[i] as number,
        irregular: r.edges?.irregular[i] ?? 0,
        first: r.edges?.first[i] ?? 0,
        firstAt: r.edges?.firstAt[i] ?? 0,
        lastAt: r.edges?.lastAt[i] ?? 0,
      };
      const b = acc.get(part.start);
      if (!b) acc.set(part.start, part);
      else {
        b.irregular += part.irregular;
        if (part.count === 0) continue;
        if (b.count === 0) Object.assign(b, { ...part, irregular: b.irregular });
        else {
          b.count += part.count;
          b.sum += part.sum;
          b.min = Math.min(b.min, part.min);
          b.max = Math.max(b.max, part.max);
          b.last = part.last;
          b.lastAt = part.lastAt;
        }
      }
    }
  }
  if (acc.size === 0) return null;
  return fromBuckets(
    [...acc.values()].sort((a, b) => a.start - b.start),
    edges,
  );
}
