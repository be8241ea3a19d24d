import { createMigrator } from '@gpu-telemetry/db';
import { createEmptyTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { createApp } from '../app';
import { STREAMER_TEST_CONFIG } from '../testing/streamer-test-app';

/**
 * The move from one row per sample (0002) to series and narrow samples (0010): every stored row
 * arrives, once, readable through the API; and the down section brings the old table back.
 */
let database: TestDatabase;
const BEFORE = '0009_gateway_key_consume_topics';
const GPU = 'GPU-migrated-0';
const t0 = Date.parse('2026-03-01T10:00:00Z');

beforeAll(async () => {
  database = await createEmptyTestDatabase();
  const { error } = await createMigrator(database.db).migrateTo(BEFORE);
  if (error) throw error;
  const pool = database.pool;
  await pool.query(`SELECT telemetry_ensure_partitions('2026-03-01', '2026-03-03')`);
  // Two days, two metrics, a MIG series with its own labels, NaN, and a duplicate-by-key row.
  await pool.query(
    `INSERT INTO telemetry (uuid, gpu_id, gpu_index, device, model_name, hostname, metric_name, "timestamp", value, labels)
     SELECT gen_random_uuid(), $1, 0, 'nvidia0', 'NVIDIA H100 80GB HBM3', 'node-1', m,
            $2::timestamptz + k * interval '10 minutes', CASE WHEN k = 3 THEN 'NaN'::float8 ELSE k END, l::jsonb
     FROM generate_series(0, 299) AS k,
          unnest(ARRAY['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP']) AS m,
          unnest(ARRAY['{"pci_bus_id": "00:18"}', '{"GPU_I_ID": "3", "pci_bus_id": "00:18"}']) AS l`,
    [GPU, new Date(t0).toISOString()],
  );
  await pool.query(
    `INSERT INTO gpus (gpu_id, gpu_index, hostname, first_seen, last_seen, metrics)
     VALUES ($1, 0, 'node-1', $2, $2::timestamptz + interval '50 hours', ARRAY['DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_GPU_UTIL'])`,
    [GPU, new Date(t0).toISOString()],
  );
}, 60_000);

afterAll(async () => {
  await database.drop();
});

function streamer() {
  return createApp({
    pool: database.pool,
    logger: createLogger('streamer', 'silent'),
    queue: new QueueClient({ url: 'http://127.0.0.1:9' }),
    config: { ...STREAMER_TEST_CONFIG, TELEMETRY_RETENTION: 0 },
  });
}

async function allSamples(): Promise<Array<Record<string, unknown>>> {
  const queue = new QueueClient({ url: 'http://127.0.0.1:9' });
  const { app } = createApp({
    pool: database.pool,
    logger: createLogger('streamer', 'silent'),
    queue,
    config: { ...STREAMER_TEST_CONFIG, TELEMETRY_RETENTION: 0 },
  });
  try {
    const res = await request(asService(app))
      .get(`/v1/gpus/${GPU}/telemetry`)
      .query({ start_time: '2026-02-01T00:00:00Z', end_time: '2026-04-01T00:00:00Z', limit: 10_000 })
      .expect(200);
    return res.body.samples;
  } finally {
    await queue.close();
  }
}

describe('migrations 0010 and 0011 (series, narrow samples, blocks)', () => {
  it('move every row into series stored once and samples that refer to them', async () => {
    const { error } = await createMigrator(database.db).migrateToLatest();
    expect(error).toBeUndefined();
    const { rows: series } = await database.pool.query(
      'SELECT metric_name, labels FROM telemetry_series ORDER BY metric_name, labels::text',
    );
    expect(series).toHaveLength(4);
    const samples = await allSamples();
    expect(samples).toHaveLength(1_200);
    expect(samples[0]).toMatchObject({
      timestamp: new Date(t0).toISOString(),
      modelName: 'NVIDIA H100 80GB HBM3',
      hostname: 'node-1',
      device: 'nvidia0',
    });
    expect(samples.filter((s) => s.value === 'NaN')).toHaveLength(4);
    const { rows: old } = await database.pool.query(`SELECT to_regclass('telemetry_rows') AS t`);
    expect(old[0].t).toBeNull();
  });

  it('serve the same samples once their chunks are compacted', async () => {
    const before = await allSamples();
    const app = streamer();
    const done = await app.compactor.compactDue();
    expect(done).toMatchObject({ chunks: 50, samples: 1_200 });
    expect(await allSamples()).toEqual(before);
    const { rows } = await database.pool.query('SELECT count(*)::int AS n FROM telemetry_samples');
    expect(rows[0].n).toBe(0);
  });

  it('go back down to one row per sample, with the same samples', async () => {
    const before = await allSamples();
    const { error } = await createMigrator(database.db).migrateTo(BEFORE);
    expect(error).toBeUndefined();
    const { rows } = await database.pool.query(
      `SELECT uuid, "timestamp", metric_name, value, labels FROM telemetry ORDER BY "timestamp", metric_name, labels::text`,
    );
    expect(rows).toHaveLength(1_200);
    expect(new Set(rows.map((r) => r.uuid)).size).toBe(1_200);
    expect(rows.map((r) => r.uuid).sort()).toEqual(before.map((s) => s.uuid).sort());
    const { rows: kind } = await database.pool.query(
      `SELECT relkind FROM pg_class WHERE relname = 'telemetry'`,
    );
    expect(kind[0].relkind).toBe('p');
  });
});
