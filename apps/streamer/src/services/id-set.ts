/**
 * A set of series ids as telemetry_hot_times stores it: ascending, each the difference from the
 * one before (the first from 0) as unsigned LEB128. A scrape's series were made together, so
 * most differences are 1 and a set costs about a byte an id. The SQL function telemetry_id_set
 * writes the same bytes.
 */

/** The set of these ids (ascending and distinct). */
export function encodeIdSet(ids: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(ids.length * 8 + 1);
  let at = 0;
  let prev = 0;
  for (const id of ids) {
    let d = id - prev;
    if (!(d > 0 || (d === 0 && at === 0))) throw new RangeError('ids must be ascending and distinct');
    prev = id;
    while (d >= 128) {
      out[at++] = (d % 128) | 128;
      d = Math.floor(d / 128);
    }
    out[at++] = d;
  }
  return out.subarray(0, at);
}

/** The ids of a set, ascending. */
export function decodeIdSet(set: Uint8Array): number[] {
  const ids: number[] = [];
  let prev = 0;
  let at = 0;
  while (at < set.length) {
    let d = 0;
    let scale = 1;
    for (;;) {
      const b = set[at++] as number;
      d += (b & 127) * scale;
      if (b < 128) break;
      scale *= 128;
      if (at >= set.length) throw new RangeError('a set ends inside a number');
    }
    prev += d;
    ids.push(prev);
  }
  return ids;
}
