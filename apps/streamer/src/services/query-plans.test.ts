import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { StreamerDatabase } from '../streamer.database';
import { logPlans, plansFor as plansForTest } from '../testing/query-plans';

/**
 * The query API must read only the rows it returns. On a realistic table (500k samples of 250
 * GPUs x 4 metrics over four hours), the plans Postgres actually runs for each endpoint, captured
 * with auto_explain, are index scans: never a sequential scan of the samples.
 */
let template: TestDatabase<StreamerDatabase>;
const GPU = 'GPU-plan-0042';

beforeAll(async () => {
  template = await createTestDatabase<StreamerDatabase>();
  const pool = template.pool;
  await pool.query(`
    INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index)
    SELECT telemetry_series_key(m, g, 0, null, null, null, null, null, null, '{}'), m, g, 0
    FROM (SELECT 'GPU-plan-' || lpad(n::text, 4, '0') AS g FROM generate_series(0, 249) AS n) gpus,
         unnest(ARRAY['DCGM_FI_DEV_GPU_UTIL','DCGM_FI_DEV_GPU_TEMP','DCGM_FI_DEV_POWER_USAGE','DCGM_FI_DEV_FB_USED']) AS m`);
  await pool.query(
    `SELECT count(*) FROM telemetry_ensure_chunks(ARRAY(SELECT now() - k * interval '30 seconds' FROM generate_series(0, 499) AS k), 3600)`,
  );
  await pool.query(`
    INSERT INTO telemetry_samples (series_id, ts, value)
    SELECT s.id, now() - k * interval '30 seconds', random() * 100
    FROM telemetry_series s, generate_series(0, 499) AS k`);
  await pool.query(
    `INSERT INTO gpus (gpu_id, first_seen, last_seen, metrics) VALUES ($1, now() - interval '3 days', now(), '{}')`,
    [GPU],
  );
  await pool.query('ANALYZE telemetry_samples');
  await pool.query('ANALYZE telemetry_series');
  await logPlans(template);
}, 120_000);

afterAll(async () => {
  await template.drop();
});

const plansFor = (path: string) => plansForTest(template, path, 'telemetry_samples');

const end = () => new Date().toISOString();
const start = () => new Date(Date.now() - 6 * 3_600_000).toISOString();

describe('query plans on 500k samples', () => {
  const INDEX = /Index (Only )?Scan (using|on) telemetry_samples_\d{8}_\d{6}_series_id_idx/;

  it('reads one metric of one GPU through the series index', async () => {
    const plan = await plansFor(
      `/v1/gpus/${GPU}/telemetry?metric=DCGM_FI_DEV_GPU_TEMP&start_time=${start()}&end_time=${end()}&limit=100`,
    );
    expect(plan).toMatch(INDEX);
    expect(plan).not.toMatch(/Seq Scan on telemetry_samples/);
  });

  it('reads every metric of one GPU through the series index', async () => {
    const plan = await plansFor(
      `/v1/gpus/${GPU}/telemetry?start_time=${start()}&end_time=${end()}&limit=100`,
    );
    expect(plan).toMatch(INDEX);
    expect(plan).not.toMatch(/Seq Scan on telemetry_samples/);
  });

  it('aggregates a series through the series index (plain or bitmap scan)', async () => {
    const plan = await plansFor(
      `/v1/gpus/${GPU}/metrics/DCGM_FI_DEV_GPU_UTIL/series?start_time=${start()}&end_time=${end()}&step=5m`,
    );
    expect(plan).toMatch(INDEX);
    expect(plan).not.toMatch(/Seq Scan on telemetry_samples/);
  });
});
