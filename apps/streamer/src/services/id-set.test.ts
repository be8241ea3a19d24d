import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { StreamerDatabase } from '../streamer.database';
import { decodeIdSet, encodeIdSet } from './id-set';

let db: TestDatabase<StreamerDatabase>;

beforeAll(async () => {
  db = await createTestDatabase<StreamerDatabase>();
});

afterAll(async () => {
  await db.drop();
});

const SETS: number[][] = [
  [],
  [1],
  [127, 128, 129],
  [5, 6, 7, 8, 300, 301, 16_384, 2 ** 31 + 7, Number.MAX_SAFE_INTEGER],
  Array.from({ length: 320 }, (_, i) => 40_000 + i),
];

describe('series id sets (telemetry_hot_times)', () => {
  it('read back the ids they were made of', () => {
    for (const ids of SETS) expect(decodeIdSet(encodeIdSet(ids))).toEqual(ids);
  });

  it('cost a byte an id for a scrape of consecutive series', () => {
    expect(encodeIdSet(SETS[4] as number[]).length).toBe(3 + 319);
  });

  it('are the bytes Postgres makes and reads (telemetry_id_set)', async () => {
    for (const ids of SETS) {
      const { rows } = await db.pool.query<{ set: Buffer; ids: string[] }>(
        `SELECT telemetry_id_set($1::bigint[]) AS set,
                ARRAY(SELECT telemetry_id_set_ids($2::bytea))::text[] AS ids`,
        [ids.map(String), encodeIdSet(ids)],
      );
      expect(rows[0]?.set.equals(encodeIdSet(ids))).toBe(true);
      expect(rows[0]?.ids.map(Number)).toEqual(ids);
    }
  });

  it('refuse ids out of order or repeated, and bytes that end inside a number', () => {
    expect(() => encodeIdSet([2, 1])).toThrow(RangeError);
    expect(() => encodeIdSet([3, 3])).toThrow(RangeError);
    expect(() => decodeIdSet(Uint8Array.of(0x81))).toThrow(RangeError);
  });
});
