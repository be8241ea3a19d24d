import { encodeIdSet } from './id-set';
import type { HotRows, HotTimes } from './telemetry-write.queries';

/**
 * A batch's rows of telemetry_hot_times: for each sample time and group of series, the set of
 * the group's series, in (time, group) order, with the samples behind each. Made in a few passes
 * over typed arrays (batches come at hundreds of thousands of samples a second): a message's
 * samples share their time and host, so rows are found by runs, and each row's samples are
 * sorted once as `seriesId * scale + index` numbers.
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

/** Ids per group of the series that have no host. */
const ID_BUCKET = 1024;

/**
 * The group of a series' hot sample times (telemetry_hot_group in SQL, the same number): FNV-1a
 * (32 bits, the top one cleared) of the UTF-8 of its host; without a host, its bucket of 1,024
 * ids, as -1 - id / 1024.
 */
export function hotGroup(host: string | null, seriesId: number): number {
  if (!host) return -1 - Math.floor(seriesId / ID_BUCKET);
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(host, 'utf8')) h = Math.imul(h ^ byte, 16777619) >>> 0;
  return h & 0x7fffffff;
}

/** `groups[i]` is sample i's hotGroup. */
export function planHotTimes(rows: HotRows, groups: readonly number[]): HotTimesPlan {
  const n = rows.us.length;
  const scale = 2 ** Math.max(1, Math.ceil(Math.log2(n + 1)));
  const runs = new Map<number, Map<number, number[]>>();
  for (let i = 0; i < n;) {
    const us = rows.us[i] as number;
    const group = groups[i] as number;
    let j = i + 1;
    while (j < n && rows.us[j] === us && groups[j] === group) j++;
    let byGroup = runs.get(us);
    if (!byGroup) runs.set(us, (byGroup = new Map()));
    let list = byGroup.get(group);
    if (!list) byGroup.set(group, (list = []));
    list.push(i, j);
    i = j;
  }
  const keys = new Float64Array(n);
  const claims: HotTimes = { us: [], groups: [], sets: [] };
  const starts: number[] = [];
  let repeated = 0;
  let at = 0;
  for (const us of [...runs.keys()].sort((a, b) => a - b)) {
    const byGroup = runs.get(us) as Map<number, number[]>;
    for (const group of [...byGroup.keys()].sort((a, b) => a - b)) {
      const start = at;
      const list = byGroup.get(group) as number[];
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
      const ids: number[] = [];
      let kept = start;
      for (let r = start; r < at; r++) {
        const seriesId = Math.floor((keys[r] as number) / scale);
        if (seriesId === ids[ids.length - 1]) {
          repeated++;
          continue;
        }
        keys[kept++] = keys[r] as number;
        ids.push(seriesId);
      }
      claims.us.push(us);
      claims.groups.push(group);
      claims.sets.push(encodeIdSet(ids));
      starts.push(start);
      at = kept;
    }
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
