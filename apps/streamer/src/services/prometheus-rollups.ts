import type { SelectHints } from '@gpu-telemetry/promql';
import { HOUR_US, type Rollup } from '../codec/rollup';
import type { Piece, Prefer } from './sample-pieces';

/**
 * When a selector may be answered from 1-hour rollups, and how, so that the answer is exactly the
 * one the raw samples give.
 *
 * Which functions: `max_over_time`, `min_over_time` and `present_over_time` of a range selector.
 * Each window's answer depends only on which values are in it, not on how many times each is
 * there: one sample per bucket carrying the bucket's max (or min), placed in the last millisecond
 * of the bucket, stands for the bucket's samples in every window that holds the whole bucket.
 * (Count, sum, avg, last and the rest would change: counts, rounding, or order.)
 *
 * Which windows: Prometheus' window is [t - range, t], closed at both ends. With every evaluation
 * time t and the range whole hours, each window holds whole buckets [t - range, t) plus whatever
 * sample lies exactly at t, which belongs to the next bucket: that one is read from the block
 * header when t starts a chunk (a block's first sample is in its header); a chunk with an
 * evaluation time strictly inside it is read raw.
 *
 * Which buckets: rollups leave out NaN and infinities, which max and min do not ignore the same
 * way. A rollup row is used only when its buckets count as many samples as the blocks it was
 * made from hold (all finite, no staleness marker); otherwise those chunks are read raw. Hot
 * chunks have no rollups yet and are read raw. Raw samples may overlap rollup buckets: max, min
 * and presence are unchanged by a value being there twice.
 */
export interface RollupPlan {
  fn: 'max' | 'min' | 'present';
  /** Every evaluation time is firstRefMs + k * stepMs (stepMs 0: the one time), up to lastRefMs. */
  firstRefMs: number;
  stepMs: number;
  lastRefMs: number;
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
  const fn = hints.func ? FUNCTIONS[hints.func] : undefined;
  if (!fn || hints.rangeMs <= 0 || hints.rangeMs % HOUR_MS !== 0) return null;
  const firstRefMs = hints.startMs + hints.rangeMs;
  if (!aligned(firstRefMs) || hints.stepMs % HOUR_MS !== 0) return null;
  return { fn, firstRefMs, stepMs: hints.stepMs, lastRefMs: hints.endMs };
}

/** Whether an evaluation time falls strictly inside (startMs, endMs). */
export function refInside(plan: RollupPlan, startMs: number, endMs: number): boolean {
  let ref = plan.firstRefMs;
  if (plan.stepMs > 0 && ref <= startMs) ref += (Math.floor((startMs - ref) / plan.stepMs) + 1) * plan.stepMs;
  return ref > startMs && ref < endMs && ref <= plan.lastRefMs;
}

/** Of two values in one millisecond (a bucket's stand-in and a raw sample), the one the function keeps. */
export function preferFor(plan: RollupPlan): Prefer {
  return (earlier, later) => {
    if (Number.isNaN(later)) return 'earlier';
    if (Number.isNaN(earlier)) return 'later';
    if (plan.fn === 'max') return later > earlier ? 'later' : 'earlier';
    if (plan.fn === 'min') return later < earlier ? 'later' : 'earlier';
    return 'earlier';
  };
}

/** A rollup's buckets as samples: one per bucket, in its last millisecond, carrying its max or min. */
export function bucketPiece(plan: RollupPlan, rollup: Rollup): Piece {
  const n = rollup.times.length;
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) times[i] = (rollup.times[i] as number) + HOUR_US - 1000;
  return { times, values: (plan.fn === 'min' ? rollup.min : rollup.max).slice(0, n) };
}

/** Sum of a rollup's counts: the finite samples it was made from. */
export function rollupCount(rollup: Rollup): number {
  let n = 0;
  for (let i = 0; i < rollup.count.length; i++) n += rollup.count[i] as number;
  return n;
}

const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
];

/** What a block's header says (see codec/block-codec.ts): sample count and first sample. */
export interface BlockHead {
  n: number;
  firstUs: number;
  /** The first value's two 32-bit words (little-endian order: low, high), as decodeBlock gives it. */
  first: Float64Array;
}

/** Reads a block header (28 bytes) and, for raw values, the first stored double. */
export function readBlockHead(head: Buffer, raw: Buffer | null): BlockHead {
  if (head[0] !== 1) throw new RangeError(`not a sample block (version ${head[0]})`);
  const int64 = (at: number) => head.readInt32BE(at) * 0x100000000 + head.readUInt32BE(at + 4);
  const n = head.readUInt32BE(1);
  const firstUs = int64(6) * (POW10[head[5] as number] as number);
  const first = new Float64Array(1);
  if (head[18] === 0) {
    if (!raw) throw new RangeError('a raw block without its first value');
    const words = new Uint32Array(first.buffer);
    words[0] = raw.readUInt32BE(4);
    words[1] = raw.readUInt32BE(0);
  } else {
    first[0] = int64(20) / (POW10[head[19] as number] as number); // as decodeBlock computes it
  }
  return { n, firstUs, first };
}
