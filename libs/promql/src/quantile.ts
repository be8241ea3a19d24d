export interface Bucket {
  upperBound: number;
  count: number;
}

/**
 * The φ-quantile of classic histogram buckets (cumulative counts by `le`), interpolated linearly
 * inside the bucket it falls in, as Prometheus computes it: NaN without a +Inf bucket or with no
 * observations, the second-highest bound when it falls in the +Inf bucket, 0 as the lower bound of
 * the first bucket when that bound is positive; bucket counts are made monotonic first.
 */
export function bucketQuantile(q: number, buckets: Bucket[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  buckets.sort((a, b) => a.upperBound - b.upperBound);
  if (buckets[buckets.length - 1].upperBound !== Infinity) return NaN;

  // Buckets with the same upper bound are one bucket.
  const merged: Bucket[] = [];
  for (const b of buckets) {
    const last = merged[merged.length - 1];
    if (last && last.upperBound === b.upperBound) last.count += b.count;
    else merged.push({ ...b });
  }
  let max = merged[0].count;
  for (let i = 1; i < merged.length; i++) {
    if (merged[i].count > max) max = merged[i].count;
    else if (merged[i].count < max) merged[i].count = max;
  }
  if (merged.length < 2) return NaN;
  const observations = merged[merged.length - 1].count;
  if (observations === 0) return NaN;
  let rank = q * observations;
  // The first bucket (among all but the last) whose count reaches the rank, found by binary
  // search as Go's sort.Search finds it: counts made monotonic above still hold NaN, and where
  // one does, a scan from the start would stop at another bucket than Prometheus does.
  let b = 0;
  for (let hi = merged.length - 1; b < hi;) {
    const h = (b + hi) >>> 1;
    if (!(merged[h].count >= rank)) b = h + 1;
    else hi = h;
  }
  if (b === merged.length - 1) return merged[merged.length - 2].upperBound;
  if (b === 0 && merged[0].upperBound <= 0) return merged[0].upperBound;
  let bucketStart = 0;
  const bucketEnd = merged[b].upperBound;
  let count = merged[b].count;
  if (b > 0) {
    bucketStart = merged[b - 1].upperBound;
    count -= merged[b - 1].count;
    rank -= merged[b - 1].count;
  }
  return bucketStart + (bucketEnd - bucketStart) * (rank / count);
}

/** The φ-quantile of values, interpolating between the two nearest ranks (NaN sorts first). */
export function quantile(q: number, values: number[]): number {
  let sorted: number[] | undefined;
  return quantileOfOrdered(
    q,
    values.length,
    (k) => (sorted ??= [...values].sort(compareNaNFirst))[k] as number,
  );
}

/**
 * The φ-quantile of n values, `at(k)` being the k-th smallest (NaN sorts first), interpolated
 * between the two nearest ranks; `at` is not called where φ or n alone decide the answer.
 */
export function quantileOfOrdered(q: number, n: number, at: (k: number) => number): number {
  if (n === 0 || Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const rank = q * (n - 1);
  const lower = Math.max(0, Math.floor(rank));
  const upper = Math.min(n - 1, lower + 1);
  const weight = rank - Math.floor(rank);
  return at(lower) * (1 - weight) + at(upper) * weight;
}

export function compareNaNFirst(a: number, b: number): number {
  if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : -1;
  if (Number.isNaN(b)) return 1;
  return a - b;
}
