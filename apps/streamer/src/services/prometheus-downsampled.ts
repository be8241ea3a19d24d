import type { ColumnDecoder } from '../codec/block-codec';
import { ROLLUP_COLUMN } from '../codec/rollup';

/**
 * PromQL past TELEMETRY_RETENTION, where raw samples are gone and only rollups are left: a series
 * is read there as a downsampled series, one sample per rollup bucket (a minute, or an hour past
 * TELEMETRY_RETENTION_1M or at steps of an hour and more), as Thanos reads its downsampled blocks.
 * Answers there are approximations of the raw ones, and say so (a warning).
 *
 * - An instant selector reads, at each evaluation time, the last value of the newest bucket whole
 *   by then, if that bucket ended no longer ago than the lookback delta or one bucket, whichever is
 *   longer: a minute's last value lags the raw one by up to a minute, and hourly values keep a line
 *   going at any step.
 * - A range function reads each bucket as one sample in the bucket's last millisecond, carrying
 *   what the function would make of the bucket's samples: its max for `max_over_time`, min for
 *   `min_over_time`, sum for `sum_over_time`, mean for `avg_over_time`, and its last value for the
 *   rest (`rate`, `increase`, `last_over_time`...: a counter's resets inside a bucket are not seen).
 *   `count_over_time` counts buckets, not samples.
 */

/** One series' bucket of a rollup, finite values only (rollups leave NaN and infinities out). */
export interface Bucket {
  startUs: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  last: number;
}

/**
 * Adds a rollup row's buckets to `into` (by bucket start): rows of one series come in start order,
 * and a bucket a chunk cut in two is in two rows, combined here (counts and sums add, min of
 * mins, max of maxes, last of the later one). Buckets without a finite value are left out.
 */
export function addRollupRow(into: Map<number, Bucket>, decoder: ColumnDecoder, data: Uint8Array): void {
  const n = decoder.decode(data);
  const col = (c: number) => decoder.columns[c] as Float64Array;
  const [count, sum, min, max, last] = [
    col(ROLLUP_COLUMN.count),
    col(ROLLUP_COLUMN.sum),
    col(ROLLUP_COLUMN.min),
    col(ROLLUP_COLUMN.max),
    col(ROLLUP_COLUMN.last),
  ];
  for (let i = 0; i < n; i++) {
    const c = count[i] as number;
    if (!(c > 0)) continue;
    const startUs = decoder.times[i] as number;
    const seen = into.get(startUs);
    if (!seen) {
      into.set(startUs, {
        startUs,
        count: c,
        sum: sum[i] as number,
        min: min[i] as number,
        max: max[i] as number,
        last: last[i] as number,
      });
      continue;
    }
    seen.count += c;
    seen.sum += sum[i] as number;
    seen.min = Math.min(seen.min, min[i] as number);
    seen.max = Math.max(seen.max, max[i] as number);
    seen.last = last[i] as number;
  }
}

/** How a selector reads downsampled buckets. */
export type DownsampledRead =
  | {
      kind: 'instant';
      /** Evaluation times (ms), ascending. */
      timesMs: readonly number[];
      lookbackMs: number;
    }
  | { kind: 'range'; func: string | undefined };

const VALUE_OF: Record<string, (b: Bucket) => number> = {
  max_over_time: (b) => b.max,
  min_over_time: (b) => b.min,
  sum_over_time: (b) => b.sum,
  avg_over_time: (b) => b.sum / b.count,
};

/**
 * The samples (ms) a series' buckets (`bucketUs` long, any order) stand for in the read, with
 * times in [fromMs, toMs); null where none.
 */
export function downsampled(
  buckets: Iterable<Bucket>,
  bucketUs: number,
  read: DownsampledRead,
  fromMs: number,
  toMs: number,
): { timestamps: Float64Array; values: Float64Array } | null {
  const sorted = [...buckets].sort((a, b) => a.startUs - b.startUs);
  const bucketMs = bucketUs / 1000;
  const times: number[] = [];
  const values: number[] = [];
  if (read.kind === 'range') {
    const func = read.func ?? '';
    const value = Object.hasOwn(VALUE_OF, func)
      ? (VALUE_OF[func] as (b: Bucket) => number)
      : (b: Bucket) => b.last;
    for (const b of sorted) {
      const at = b.startUs / 1000 + bucketMs - 1; // the bucket's last millisecond
      if (at < fromMs || at >= toMs) continue;
      times.push(at);
      values.push(value(b));
    }
  } else {
    const freshMs = Math.max(read.lookbackMs, bucketMs);
    let k = -1; // the newest bucket whole at the evaluation time
    for (const t of read.timesMs) {
      if (t < fromMs || t >= toMs) continue;
      while (k + 1 < sorted.length && (sorted[k + 1] as Bucket).startUs / 1000 + bucketMs - 1 <= t) k++;
      if (k < 0) continue;
      const b = sorted[k] as Bucket;
      if (t - (b.startUs / 1000 + bucketMs - 1) > freshMs) continue;
      times.push(t);
      values.push(b.last);
    }
  }
  if (times.length === 0) return null;
  return { timestamps: Float64Array.from(times), values: Float64Array.from(values) };
}

/** An instant selector's evaluation times (ms, ascending): `lastMs`, then back by `stepMs` to `firstMs`. */
export function evaluationTimes(firstMs: number, lastMs: number, stepMs: number): number[] {
  if (stepMs <= 0) return [lastMs];
  const out: number[] = [];
  for (let t = lastMs; t >= firstMs; t -= stepMs) out.push(t);
  return out.reverse();
}
