import { planHotTimes, samplesOf } from './hot-times';
import { decodeIdSet } from './id-set';

describe('a batch planned as telemetry_hot_times rows', () => {
  it('claims a row per sample time and bucket of 1,024 series ids, in (time, bucket) order', () => {
    // Two messages at time 2000 (series 5, 3, 1030), one at 1000, sent out of time order.
    const plan = planHotTimes({
      seriesIds: [5, 3, 1030, 7, 4],
      us: [2000, 2000, 2000, 1000, 2000],
      values: [1, 2, 3, 4, 5],
    });
    expect(plan.claims.us).toEqual([1000, 2000, 2000]);
    expect(plan.claims.buckets).toEqual([0, 0, 1]);
    expect(plan.claims.sets.map((set) => decodeIdSet(set))).toEqual([[7], [3, 4, 5], [1030]]);
    expect([...samplesOf(plan, 1)]).toEqual([
      [3, 1],
      [4, 4],
      [5, 0],
    ]);
    expect(plan.repeated).toBe(0);
  });

  it('keeps a sample the batch holds twice once, the first', () => {
    const plan = planHotTimes({ seriesIds: [9, 9, 8, 9], us: [10, 10, 10, 20], values: [1, 2, 3, 4] });
    expect(plan.repeated).toBe(1);
    expect([...samplesOf(plan, 0)]).toEqual([
      [8, 2],
      [9, 0],
    ]);
    expect([...samplesOf(plan, 1)]).toEqual([[9, 3]]);
  });
});
