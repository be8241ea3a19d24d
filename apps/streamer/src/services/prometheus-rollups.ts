import type { SelectHints } from '@gpu-telemetry/promql';
import type { ColumnDecoder } from '../codec/block-codec';
import { HOUR_US, ROLLUP_COLUMN } from '../codec/rollup';
import type { Piece, Prefer } from './sample-pieces';

/**
 * When a selector may be answered from 1-hour rollups, and how, so that the answer is exactly the
 * one the raw samples give. Only rollups with edges (codec/rollup.ts) are used: each bucket says
 * how many of its samples are irregular (not finite, or sharing a millisecond), and its first and
 * last finite sample with their times.
 *
 * Which selectors:
 * - `max_over_time`, `min_over_time` and `present_over_time` of a range selector. Each window's
 *   answer depends only on which values are in it, not on how many times each is there: one
 *   sample per bucket carrying the bucket's max (or min), placed in the last millisecond of the
 *   bucket, stands for the bucket's samples in every window that holds the whole bucket. (Count,
 *   sum, avg and the rest would change: counts, rounding, or order.)
 * - Instant selectors. At an evaluation time t the engine reads the newest sample at or before t:
 *   one exactly at t (the first of the bucket t starts), or the last of an earlier bucket. Both
 *   are kept, with their times; staleness markers are read as stored.
 *
 * Which windows: Prometheus' window is [t - range, t], closed at both ends (an instant selector's
 * is [t - lookback, t]). With every evaluation time t on a whole hour, and a range of whole hours,
 * each window holds whole buckets [t - range, t) plus whatever sample lies exactly at t: the first
 * of the next bucket, which stands as itself. Buckets are hours of the epoch whatever the chunks:
 * a chunk cut inside an hour gives partial buckets, each standing for its own samples. An instant
 * selector's window may cut a bucket: the stand-ins are real samples at their own times, in the
 * window exactly when they are.
 *
 * Which buckets: rollups leave NaN and infinities out of their values, which max and min do not
 * ignore the same way, and PromQL keeps one sample a millisecond. A bucket is used only where none
 * of its samples is irregular (not finite, or sharing a millisecond), and every chunk it overlaps
 * is still stored (not past retention); the chunks of any other bucket are read raw, and so are
 * chunks whose rollups may lack edges or be gone (compacted before edges, or kept past
 * TELEMETRY_RETENTION_1H: exact_rollups false), and hot chunks. Raw samples may overlap buckets:
 * max, min and presence are unchanged by a value being there twice, and stand-ins for first and
 * last are the raw samples themselves.
 */
export interface RollupPlan {
  /** `last`: an instant selector. */
  fn: 'max' | 'min' | 'present' | 'last';
}

const FUNCTIONS: Record<string, RollupPlan['fn']> = {
  max_over_time: 'max',
  min_over_time: 'min',
  present_over_time: 'present',
};
const HOUR_MS = HOUR_US / 1000;
const aligned = (ms: number) => ((ms % HOUR_MS) + HOUR_MS) % HOUR_MS === 0;

/** The plan for these hints, or null where only raw samples are sure to give the same answer. */
export function planRollups(hints: SelectHints): RollupPlan | null {
  if (hints.rangeMs === 0) {
    // Evaluation times: endMs, endMs - stepMs, ... all on whole hours.
    return aligned(hints.endMs) && hints.stepMs % HOUR_MS === 0 ? { fn: 'last' } : null;
  }
  const fn = hints.func ? FUNCTIONS[hints.func] : undefined;
  if (!fn || hints.rangeMs <= 0 || hints.rangeMs % HOUR_MS !== 0) return null;
  // Evaluation times: startMs + rangeMs, then every stepMs.
  if (!aligned(hints.startMs + hints.rangeMs) || hints.stepMs % HOUR_MS !== 0) return null;
  return { fn };
}

/** Of two values in one millisecond (a bucket's stand-in and a raw sample), the one the function keeps. */
export function preferFor(plan: RollupPlan): Prefer {
  return (earlier, later) => {
    if (plan.fn === 'last') return 'later'; // as raw reading keeps it (a stand-in is a raw sample)
    if (Number.isNaN(later)) return 'earlier';
    if (Number.isNaN(earlier)) return 'later';
    if (plan.fn === 'max') return later > earlier ? 'later' : 'earlier';
    if (plan.fn === 'min') return later < earlier ? 'later' : 'earlier';
    return 'earlier';
  };
}

/** A 1-hour rollup row read for a plan: its buckets' stand-ins, and the buckets they cannot stand for. */
export interface RollupRead {
  /** The samples standing for the usable buckets. */
  piece: Piece;
  /** How many buckets they stand for. */
  buckets: number;
  /** Starts (µs) of the buckets it cannot stand for (see rollupRow): their chunks are read raw. */
  unusable: number[];
}

/**
 * A 1-hour rollup row (see codec/rollup.ts) read for the plan. A bucket is usable where `within`
 * accepts it and every sample in it is finite; it stands as its first sample at its time, then
 * its last sample at its time (instant selectors), or a sample carrying its max or min in its last
 * millisecond (range functions). Null where the row has no edges (written before rollups kept
 * them): it stands for nothing. `decoder` is reused from row to row.
 */
export function rollupRow(
  plan: RollupPlan,
  decoder: ColumnDecoder,
  data: Uint8Array,
  within: (bucketUs: number) => boolean,
): RollupRead | null {
  const n = decoder.decode(data);
  if (decoder.columnCount <= ROLLUP_COLUMN.lastAt) return null;
  const col = (c: number) => decoder.columns[c] as Float64Array;
  const [irregular, first, firstAt] = [
    col(ROLLUP_COLUMN.irregular),
    col(ROLLUP_COLUMN.first),
    col(ROLLUP_COLUMN.firstAt),
  ];
  const [second, secondAt] =
    plan.fn === 'last'
      ? [col(ROLLUP_COLUMN.last), col(ROLLUP_COLUMN.lastAt)]
      : [col(plan.fn === 'min' ? ROLLUP_COLUMN.min : ROLLUP_COLUMN.max), null];
  const times = new Float64Array(2 * n);
  const values = new Float64Array(2 * n);
  const unusable: number[] = [];
  let k = 0;
  let buckets = 0;
  for (let i = 0; i < n; i++) {
    const start = decoder.times[i] as number;
    if (!within(start) || irregular[i] !== 0) {
      unusable.push(start);
      continue;
    }
    buckets++;
    times[k] = start + Math.round((firstAt[i] as number) * 1000); // ms offsets of µs times
    values[k++] = first[i] as number;
    times[k] = start + (secondAt ? Math.round((secondAt[i] as number) * 1000) : HOUR_US - 1000);
    values[k++] = second[i] as number;
  }
  return { piece: { times: times.subarray(0, k), values: values.subarray(0, k) }, buckets, unusable };
}
