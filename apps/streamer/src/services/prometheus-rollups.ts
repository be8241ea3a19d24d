import type { SelectHints } from '@gpu-telemetry/promql';
import type { ColumnDecoder } from '../codec/block-codec';
import { HOUR_US } from '../codec/rollup';
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

/**
 * A 1-hour rollup row (see codec/rollup.ts: count, sum, min, max, last per bucket) read for the
 * plan: how many finite samples it counts, and its buckets as samples, one per bucket in its last
 * millisecond carrying the bucket's max or min. `decoder` is reused from row to row.
 */
export function rollupRow(
  plan: RollupPlan,
  decoder: ColumnDecoder,
  data: Uint8Array,
): { count: number; piece: Piece } {
  const n = decoder.decode(data);
  const counts = decoder.columns[0] as Float64Array;
  const column = decoder.columns[plan.fn === 'min' ? 2 : 3] as Float64Array;
  let count = 0;
  const times = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    count += counts[i] as number;
    times[i] = (decoder.times[i] as number) + HOUR_US - 1000;
  }
  return { count, piece: { times, values: column.slice(0, n) } };
}

const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
];

/** What a block's header says (see codec/block-codec.ts): sample count and first sample. */
export interface BlockHead {
  n: number;
  firstUs: number;
  /** The first value's two 32-bit words (low, high), bit for bit as decodeBlock gives it. */
  firstLow: number;
  firstHigh: number;
}

const scratch = new Float64Array(1);
const scratchWords = new Uint32Array(scratch.buffer);

/** Reads a block header (28 bytes) and, for raw values, the first stored double. */
export function readBlockHead(head: Uint8Array, raw: Uint8Array | null): BlockHead {
  if (head[0] !== 1) throw new RangeError(`not a sample block (version ${head[0]})`);
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const int64 = (at: number) => view.getInt32(at) * 0x100000000 + view.getUint32(at + 4);
  const n = view.getUint32(1);
  const firstUs = int64(6) * (POW10[head[5] as number] as number);
  if (head[18] === 0) {
    if (!raw) throw new RangeError('a raw block without its first value');
    const words = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    return { n, firstUs, firstLow: words.getUint32(4), firstHigh: words.getUint32(0) };
  }
  scratch[0] = int64(20) / (POW10[head[19] as number] as number); // as decodeBlock computes it
  return { n, firstUs, firstLow: scratchWords[0] as number, firstHigh: scratchWords[1] as number };
}
