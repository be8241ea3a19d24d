import { createDb } from '@gpu-telemetry/db';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger } from '@gpu-telemetry/service-kit';
import { QueueClient } from '@gpu-telemetry/queue-client';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { createApp } from '../app';
import { STREAMER_TEST_CONFIG } from '../testing/streamer-test-app';

/**
 * The query API must read only the rows it returns. On a realistic table (500k samples of 250
 * GPUs over three days), the plans Postgres actually runs for each endpoint, captured with
 * auto_explain, are index scans: never a sequential scan of the samples.
 */
let template: TestDatabase;
const plans: string[] = [];
const GPU = 'GPU-plan-0042';

beforeAll(async () => {
  template = await createTestDatabase();
  const pool = template.pool;
  await pool.query(`SELECT telemetry_ensure_partitions((now() - interval '3 days')::date, now()::date)`);
  await pool.query(`
    INSERT INTO telemetry (uuid, gpu_id, gpu_index, metric_name, "timestamp", value, labels)
    SELECT gen_random_uuid(), 'GPU-plan-' || lpad((n % 250)::text, 4, '0'), n % 8,
           (ARRAY['DCGM_FI_DEV_GPU_UTIL','DCGM_FI_DEV_GPU_TEMP','DCGM_FI_DEV_POWER_USAGE','DCGM_FI_DEV_FB_USED'])[1 + (n / 250) % 4],
           now() - (n / 1000) * interval '30 seconds', random() * 100, '{}'
    FROM generate_series(1, 500000) AS n`);
  await pool.query(
    `INSERT INTO gpus (gpu_id, first_seen, last_seen, metrics) VALUES ($1, now() - interval '3 days', now(), '{}')`,
    [GPU],
  );
  await pool.query('ANALYZE telemetry');
  await pool.query(`ALTER DATABASE ${template.name} SET session_preload_libraries = 'auto_explain'`);
  await pool.query(`ALTER DATABASE ${template.name} SET auto_explain.log_min_duration = 0`);
  await pool.query(`ALTER DATABASE ${template.name} SET auto_explain.log_level = 'notice'`);
  await pool.query(`ALTER DATABASE ${template.name} SET client_min_messages = 'notice'`);
}, 120_000);

afterAll(async () => {
  await template.drop();
});

async function plansFor(path: string): Promise<string> {
  const database = createDb(template.url, { max: 2 });
  database.pool.on('connect', (client) => client.on('notice', (notice) => plans.push(notice.message ?? '')));
  const queue = new QueueClient({ url: 'http://127.0.0.1:9' });
  const { app } = createApp({
    db: database.db,
    pool: database.pool,
    logger: createLogger('streamer', 'silent'),
    queue,
    config: STREAMER_TEST_CONFIG,
  });
  plans.length = 0;
  try {
    await request(asService(app)).get(path).expect(200);
    return plans.filter((plan) => plan.includes('telemetry')).join('\n');
  } finally {
    await queue.close();
    await database.close();
  }
}

const end = () => new Date().toISOString();
const start = () => new Date(Date.now() - 6 * 3_600_000).toISOString();

describe('query plans on 500k samples', () => {
  it('reads one metric of one GPU through the sample key index', async () => {
    const plan = await plansFor(
      `/v1/gpus/${GPU}/telemetry?metric=DCGM_FI_DEV_GPU_TEMP&start_time=${start()}&end_time=${end()}&limit=100`,
    );
    expect(plan).toMatch(/Index (Only )?Scan using telemetry_p\d{8}_gpu_id_metric_name_timestamp_uuid_idx/);
    expect(plan).not.toMatch(/Seq Scan on telemetry/);
  });

  it('reads every metric of one GPU through the GPU/time index', async () => {
    const plan = await plansFor(
      `/v1/gpus/${GPU}/telemetry?start_time=${start()}&end_time=${end()}&limit=100`,
    );
    expect(plan).toMatch(/Index Scan using telemetry_p\d{8}_gpu_id_timestamp_idx/);
    expect(plan).not.toMatch(/Seq Scan on telemetry/);
  });

  it('aggregates a series through the sample key index (plain or bitmap scan)', async () => {
    const plan = await plansFor(
      `/v1/gpus/${GPU}/metrics/DCGM_FI_DEV_GPU_UTIL/series?start_time=${start()}&end_time=${end()}&step=5m`,
    );
    expect(plan).toMatch(
      /Index (Only )?Scan (using|on) telemetry_p\d{8}_gpu_id_metric_name_timestamp_uuid_idx/,
    );
    expect(plan).not.toMatch(/Seq Scan on telemetry/);
  });
});
