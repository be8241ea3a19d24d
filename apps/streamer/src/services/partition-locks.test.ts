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
  it('are made at once, take rows, and keep the index and the storage settings of their parent', async () => {
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

      // Rows go in, and the new partition has the series index of any other.
      const start = rows[0]?.chunk_start as Date;
      const insert = `INSERT INTO telemetry_samples (series_id, ts, value) SELECT id, $1, 1 FROM telemetry_series`;
      await maker.query(insert, [start]);
      const indexes = await maker.query<{ indexdef: string }>(
        `SELECT indexdef FROM pg_indexes WHERE tablename = telemetry_chunk_partition($1)`,
        [start],
      );
      expect(indexes.rows.map((r) => r.indexdef.replace(/^.* USING /, ''))).toEqual(['btree (series_id)']);
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

  it('are dropped by retention only when they can be at once: a drop refused waits for the next round', async () => {
    // A day of blocks and a chunk, both past any retention by the time of the drop below.
    await db.pool.query(`SELECT telemetry_ensure_day('telemetry_blocks', '2001-01-01')`);
    await db.pool.query(
      `SELECT count(*) FROM telemetry_ensure_chunks(ARRAY['2001-01-01T10:00:00Z'::timestamptz], 3600)`,
    );
    const reader = await db.pool.connect();
    const dropper = await db.pool.connect();
    try {
      await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await reader.query('SELECT count(*) FROM telemetry_samples');
      await reader.query('SELECT count(*) FROM telemetry_blocks');
      await dropper.query(`SET statement_timeout = '10s'`);
      const started = performance.now();
      const chunks = await dropper.query(`SELECT telemetry_drop_chunks('2001-01-02T00:00:00Z') AS start`);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(chunks.rows).toEqual([]);
      // Nothing undone halfway: the chunk keeps its row while its partition stays.
      const kept = await dropper.query(
        `SELECT count(*)::int AS n FROM telemetry_chunks WHERE chunk_start = '2001-01-01T10:00:00Z'`,
      );
      expect(kept.rows[0].n).toBe(1);
      await reader.query('COMMIT');
      // The next round drops both.
      const later = await dropper.query(`SELECT telemetry_drop_chunks('2001-01-02T00:00:00Z') AS start`);
      expect(later.rows.map((r) => (r.start as Date).toISOString())).toEqual(['2001-01-01T10:00:00.000Z']);
      const days = await dropper.query(`SELECT to_regclass('telemetry_blocks_20010101') AS left`);
      expect(days.rows[0].left).toBeNull();
    } finally {
      reader.release();
      dropper.release();
    }
  });
});
