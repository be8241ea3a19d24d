import { encodeIdSet } from './id-set';
import { HOT_TIME_BUCKET, type HotRows, type HotTimes } from './telemetry-write.queries';

/**
 * A batch's rows of telemetry_hot_times: for each sample time and bucket of series ids, the set of
 * its series, in (time, bucket) order, with the samples behind each. Made in a few passes over
 * typed arrays (the batch is hundreds of thousands of samples a second): a message's samples
 * share their time, so times are grouped by runs, and each time's samples are sorted once as
 * `seriesId * scale + index` numbers.
 */
export interface HotTimesPlan {
  claims: HotTimes;
  /** Claim k's samples are keys[starts[k]] to keys[starts[k + 1]] (exclusive), ascending by series. */
  keys: Float64Array;
  starts: number[];
  /** keys are seriesId * scale + the sample's index in the batch. */
  scale: number;
  /** Samples the batch held twice (same series and time): each is kept once, the first. */
  repeated: number;
}

export function planHotTimes(rows: HotRows): HotTimesPlan {
  const n = rows.us.length;
  const scale = 2 ** Math.max(1, Math.ceil(Math.log2(n + 1)));
  const runs = new Map<number, number[]>();
  for (let i = 0; i < n;) {
    const us = rows.us[i] as number;
    let j = i + 1;
    while (j < n && rows.us[j] === us) j++;
    let list = runs.get(us);
    if (!list) runs.set(us, (list = []));
    list.push(i, j);
    i = j;
  }
  const keys = new Float64Array(n);
  const claims: HotTimes = { us: [], buckets: [], sets: [] };
  const starts: number[] = [];
  let repeated = 0;
  let at = 0;
  for (const us of [...runs.keys()].sort((a, b) => a - b)) {
    const start = at;
    const list = runs.get(us) as number[];
    for (let r = 0; r < list.length; r += 2) {
      for (let q = list[r] as number; q < (list[r + 1] as number); q++) {
        const seriesId = rows.seriesIds[q] as number;
        if (!(seriesId >= 0 && seriesId * scale + q <= Number.MAX_SAFE_INTEGER))
          throw new RangeError(`series id ${seriesId} out of range for a batch of ${n}`);
        keys[at++] = seriesId * scale + q;
      }
    }
    keys.subarray(start, at).sort();
    // The first of a series' samples at this time is kept (the lowest index sorts first).
    let kept = start;
    let previous = -1;
    for (let r = start; r < at; r++) {
      const seriesId = Math.floor((keys[r] as number) / scale);
      if (seriesId === previous) {
        repeated++;
        continue;
      }
      keys[kept++] = keys[r] as number;
      previous = seriesId;
    }
    for (let from = start; from < kept;) {
      const bucket = Math.floor((keys[from] as number) / scale / HOT_TIME_BUCKET);
      let to = from + 1;
      while (to < kept && Math.floor((keys[to] as number) / scale / HOT_TIME_BUCKET) === bucket) to++;
      const ids = new Array<number>(to - from);
      for (let r = from; r < to; r++) ids[r - from] = Math.floor((keys[r] as number) / scale);
      claims.us.push(us);
      claims.buckets.push(bucket);
      claims.sets.push(encodeIdSet(ids));
      starts.push(from);
      from = to;
    }
    at = kept;
  }
  starts.push(at);
  return { claims, keys, starts, scale, repeated };
}

/** Claim k's samples: [seriesId, index in the batch], ascending by series. */
export function* samplesOf(plan: HotTimesPlan, k: number): Generator<[number, number]> {
  const { keys, starts, scale } = plan;
  for (let r = starts[k] as number; r < (starts[k + 1] as number); r++) {
    const key = keys[r] as number;
    yield [Math.floor(key / scale), key % scale];
  }
}
