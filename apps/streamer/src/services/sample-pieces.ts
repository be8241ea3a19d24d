/** Samples of one series from one place (a block, hot rows, rollup buckets): times in µs, ascending. */
export interface Piece {
  times: Float64Array;
  values: Float64Array;
}

/** Of two samples in the same millisecond, which stands: by default the later one. */
export type Prefer = (earlier: number, later: number) => 'earlier' | 'later';

/**
 * One series' pieces as the engine takes them: times in ms, ascending and unique (two samples in
 * one millisecond: the one `prefer` picks), values bit for bit as stored, only [startMs, endMs].
 */
export function mergePieces(
  pieces: Piece[],
  startMs: number,
  endMs: number,
  options: {
    prefer?: Prefer;
    /**
     * Where the series ended (stale markers, µs): each becomes Prometheus' stale NaN, unless a
     * sample stands in that millisecond (as Prometheus keeps the first of two at one time).
     */
    staleUs?: readonly number[];
  } = {},
): { timestamps: Float64Array; values: Float64Array } | null {
  const { prefer } = options;
  if (options.staleUs?.length) pieces = [...pieces, stalePiece(options.staleUs)];
  if (pieces.length === 0) return null;
  pieces.sort((a, b) => (a.times[0] as number) - (b.times[0] as number));
  const total = pieces.reduce((n, p) => n + p.times.length, 0);
  let timestamps = new Float64Array(total);
  let values = new Float64Array(total);
  // Values move as their two 32-bit words: a NaN moved as a number may lose its bits.
  let out = new Uint32Array(values.buffer);
  let n = 0;
  let ordered = true;
  let shared = false; // two samples in one millisecond
  for (const p of pieces) {
    // A typed array set from one of its own type copies the bytes: a NaN keeps its bits.
    values.set(p.values, n);
    const times = p.times;
    let last = n > 0 ? (timestamps[n - 1] as number) : -Infinity;
    for (let k = 0; k < times.length; k++) {
      const ms = Math.floor((times[k] as number) / 1000);
      if (ms <= last) {
        if (ms < last) ordered = false;
        else shared = true;
      }
      timestamps[n++] = ms;
      last = ms;
    }
  }
  if (!ordered) {
    const order = Array.from({ length: n }, (_, i) => i).sort(
      (a, b) => (timestamps[a] as number) - (timestamps[b] as number) || a - b,
    );
    const t = new Float64Array(n);
    const v = new Float64Array(n);
    const w = new Uint32Array(v.buffer);
    order.forEach((i, j) => {
      t[j] = timestamps[i] as number;
      w[2 * j] = out[2 * i] as number;
      w[2 * j + 1] = out[2 * i + 1] as number;
    });
    timestamps = t;
    values = v;
    out = w;
  }
  // One sample per millisecond (nothing to do where, in order, no two shared one).
  let m = ordered && !shared ? n : 0;
  for (let i = m; i < n; i++) {
    if (m > 0 && timestamps[m - 1] === timestamps[i]) {
      const earlierStale = isStale(out, m - 1);
      const laterStale = isStale(out, i);
      if (laterStale && !earlierStale) continue;
      if (
        earlierStale === laterStale &&
        (prefer?.(values[m - 1] as number, values[i] as number) ?? 'later') === 'earlier'
      )
        continue;
      m--;
    }
    timestamps[m] = timestamps[i] as number;
    out[2 * m] = out[2 * i] as number;
    out[2 * m + 1] = out[2 * i + 1] as number;
    m++;
  }
  const t = timestamps.subarray(0, m);
  const v = values.subarray(0, m);
  const lo = lowerBound(t, startMs);
  const hi = lowerBound(t, endMs + 1);
  if (hi <= lo) return null;
  return { timestamps: t.subarray(lo, hi), values: v.subarray(lo, hi) };
}

const STALE_HIGH = 0x7ff00000;
const STALE_LOW = 0x00000002;
const isStale = (words: Uint32Array, i: number) =>
  words[2 * i] === STALE_LOW && words[2 * i + 1] === STALE_HIGH;

/** Stale markers as samples: Prometheus' stale NaN at each time. */
function stalePiece(staleUs: readonly number[]): Piece {
  const times = Float64Array.from(staleUs).sort();
  const values = new Float64Array(times.length);
  const words = new Uint32Array(values.buffer);
  for (let i = 0; i < times.length; i++) {
    words[2 * i] = STALE_LOW;
    words[2 * i + 1] = STALE_HIGH;
  }
  return { times, values };
}

/**
 * Of a piece (times ascending), only the samples an instant selector can read: for each
 * evaluation time lastMs, lastMs - stepMs, ... (stepMs 0: lastMs alone), the newest sample in that
 * millisecond or before. Whatever other pieces hold, the newest sample at or before each time is
 * one of these or one of theirs.
 */
export function newestAtEach(piece: Piece, instants: { lastMs: number; stepMs: number }): Piece {
  const { times } = piece;
  if (times.length === 0) return piece;
  if (instants.stepMs > 0) {
    // Not much to leave out where there are about as many evaluation times as samples (a
    // dashboard's step near the scrape interval): the piece as it is, without a search per time.
    const spanMs =
      Math.min(instants.lastMs, (times[times.length - 1] as number) / 1000) - (times[0] as number) / 1000;
    if (times.length <= 2 * (Math.max(0, spanMs) / instants.stepMs + 1)) return piece;
  }
  const keep: number[] = [];
  // From the newest evaluation time back: at each, the last sample in its millisecond or before
  // (times are µs: before the next millisecond), then on to the first time before that sample.
  let ref = instants.lastMs;
  let end = times.length;
  for (;;) {
    const i = lowerBound(times, (ref + 1) * 1000, end) - 1;
    if (i < 0) break;
    keep.push(i);
    if (instants.stepMs <= 0) break;
    const ms = Math.floor((times[i] as number) / 1000);
    ref -= Math.ceil((ref - ms + 1) / instants.stepMs) * instants.stepMs;
    end = i;
  }
  if (keep.length === times.length) return piece;
  keep.reverse();
  const out = { times: new Float64Array(keep.length), values: new Float64Array(keep.length) };
  const from = new Uint32Array(piece.values.buffer, piece.values.byteOffset, piece.values.length * 2);
  const to = new Uint32Array(out.values.buffer);
  keep.forEach((k, j) => {
    out.times[j] = times[k] as number;
    to[2 * j] = from[2 * k] as number;
    to[2 * j + 1] = from[2 * k + 1] as number;
  });
  return out;
}

/** The first index (below `end`) whose value is >= x. */
function lowerBound(a: Float64Array, x: number, end = a.length): number {
  let lo = 0;
  let hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
