import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { StreamerDatabase } from '../streamer.database';
import { hotGroup, planHotTimes, samplesOf } from './hot-times';
import { decodeIdSet } from './id-set';

let db: TestDatabase<StreamerDatabase>;

beforeAll(async () => {
  db = await createTestDatabase<StreamerDatabase>();
});

afterAll(async () => {
  await db.drop();
});

describe('a batch planned as telemetry_hot_times rows', () => {
  it('claims a row per sample time and group, in (time, group) order', () => {
    // Two hosts (groups 7 and 3) at time 2000, host 7 again at 1000, sent out of time order.
    const plan = planHotTimes(
      { seriesIds: [5, 3, 1030, 7, 4], us: [2000, 2000, 2000, 1000, 2000], values: [1, 2, 3, 4, 5] },
      [7, 7, 3, 7, 7],
    );
    expect(plan.claims.us).toEqual([1000, 2000, 2000]);
    expect(plan.claims.groups).toEqual([7, 3, 7]);
    expect(plan.claims.sets.map((set) => decodeIdSet(set))).toEqual([[7], [1030], [3, 4, 5]]);
    expect([...samplesOf(plan, 2)]).toEqual([
      [3, 1],
      [4, 4],
      [5, 0],
    ]);
    expect(plan.repeated).toBe(0);
  });

  it('keeps a sample the batch holds twice once, the first', () => {
    const plan = planHotTimes(
      { seriesIds: [9, 9, 8, 9], us: [10, 10, 10, 20], values: [1, 2, 3, 4] },
      [1, 1, 1, 1],
    );
    expect(plan.repeated).toBe(1);
    expect([...samplesOf(plan, 0)]).toEqual([
      [8, 2],
      [9, 0],
    ]);
    expect([...samplesOf(plan, 1)]).toEqual([[9, 3]]);
  });

  it('groups a series by its host as Postgres does (telemetry_hot_group), by id range without one', async () => {
    const cases: [string | null, number][] = [
      ['sim-node-001', 17],
      ['gpu-node-ä-07.example.com', 5],
      ['10.0.3.7:9400', 2 ** 31],
      [null, 1023],
      [null, 1024],
      ['', 5000],
    ];
    for (const [host, seriesId] of cases) {
      const { rows } = await db.pool.query<{ g: number }>('SELECT telemetry_hot_group($1, $2) AS g', [
        host,
        seriesId,
      ]);
      expect(rows[0]?.g).toBe(hotGroup(host, seriesId));
    }
    expect(hotGroup(null, 1023)).toBe(-1);
    expect(hotGroup(null, 1024)).toBe(-2);
    expect(hotGroup('sim-node-001', 1)).toBe(hotGroup('sim-node-001', 99_999));
    expect(hotGroup('sim-node-001', 1)).toBeGreaterThanOrEqual(0);
  });
});
