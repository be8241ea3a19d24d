import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { PoolClient } from 'pg';
import type { StreamerDatabase } from '../streamer.database';

/**
 * A new chunk's partition, or a new day of blocks, is made while reads hold their tables: a
 * PromQL snapshot or a dashboard query in flight must not hold up the ingest that needs the next
 * chunk (CREATE TABLE ... PARTITION OF would wait for it, and everything after would wait too).
 */
let db: TestDatabase<StreamerDatabase>;
let reader: PoolClient;

beforeAll(async () => {
  db = await createTestDatabase<StreamerDatabase>();
  await db.pool.query(
    `INSERT INTO telemetry_series (key, metric_name) VALUES (telemetry_series_key('m', 'GPU-p', 0, null, null, 'h', null, null, null, '{}'), 'm')`,
  );
});

afterAll(async () => {
  reader?.release();
  await db.drop();
});

describe('partitions made while a long read holds the tables', () => {
  it('are made at once, take rows, and keep the key and the storage settings of their parent', async () => {
    reader = await db.pool.connect();
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query('SELECT count(*) FROM telemetry_samples');
    await reader.query('SELECT count(*) FROM telemetry_blocks');
    await reader.query('SELECT count(*) FROM telemetry_rollups_1m');

    const maker = await db.pool.connect();
    try {
      await maker.query(`SET statement_timeout = '5s'`);
      const started = performance.now();
      const { rows } = await maker.query<{ chunk_start: Date }>(
        `SELECT chunk_start FROM telemetry_ensure_chunks(ARRAY[now() + interval '3 hours'], 3600)`,
      );
      await maker.query(`SELECT telemetry_ensure_day('telemetry_blocks', (now() + interval '2 days')::date)`);
      await maker.query(
        `SELECT telemetry_ensure_day('telemetry_rollups_1m', (now() + interval '2 days')::date)`,
      );
      expect(performance.now() - started).toBeLessThan(2_000);

      // Rows go in, and the unique key holds in the new partition as in any other.
      const start = rows[0]?.chunk_start as Date;
      const insert = `INSERT INTO telemetry_samples (series_id, ts, value) SELECT id, $1, 1 FROM telemetry_series`;
      await maker.query(insert, [start]);
      await expect(maker.query(insert, [start])).rejects.toMatchObject({ code: '23505' });
      // Blocks stay out of line (STORAGE EXTERNAL), as their parent says.
      const storage = await maker.query<{ attstorage: string }>(
        `SELECT a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relname = 'telemetry_blocks_' || to_char((now() + interval '2 days')::date, 'YYYYMMDD')
           AND a.attname = 'data'`,
      );
      expect(storage.rows).toEqual([{ attstorage: 'e' }]);
    } finally {
      maker.release();
    }
    // The read goes on from its snapshot, and sees none of it.
    expect((await reader.query('SELECT count(*)::int AS n FROM telemetry_samples')).rows[0].n).toBe(0);
    await reader.query('COMMIT');
  });
});
