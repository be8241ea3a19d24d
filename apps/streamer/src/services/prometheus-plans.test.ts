import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { StreamerDatabase } from '../streamer.database';
import { logPlans, plansFor as plansForTest } from '../testing/query-plans';

/**
 * A selector that names its metric reads only that metric's series: on 20,000 series (200
 * metrics of 100 GPUs), the plans Postgres runs for a query, the series list and a metric's label
 * values, captured with auto_explain, go through telemetry_series_name_idx (plain or bitmap scans), never a sequential
 * scan of every series; and the names are listed by skipping through that index.
 */
let template: TestDatabase<StreamerDatabase>;

beforeAll(async () => {
  template = await createTestDatabase<StreamerDatabase>();
  const pool = template.pool;
  await pool.query(`
    INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, hostname)
    SELECT telemetry_series_key(m, g, 0, null, null, 'node-1', null, null, null, '{}'), m, g, 0, 'node-1'
    FROM (SELECT 'GPU-plan-' || lpad(n::text, 4, '0') AS g FROM generate_series(0, 99) AS n) gpus,
         (SELECT 'metric_' || k AS m FROM generate_series(0, 199) AS k) metrics`);
  await pool.query(
    `SELECT count(*) FROM telemetry_ensure_chunks(ARRAY(SELECT now() - k * interval '30 seconds' FROM generate_series(0, 119) AS k), 3600)`,
  );
  await pool.query(`
    INSERT INTO telemetry_samples (series_id, ts, value)
    SELECT s.id, now() - k * interval '30 seconds', random() * 100
    FROM telemetry_series s, generate_series(0, 119) AS k WHERE s.metric_name = 'metric_7'`);
  await pool.query('ANALYZE telemetry_series');
  await pool.query('ANALYZE telemetry_samples');
  await logPlans(template);
}, 120_000);

afterAll(async () => {
  await template.drop();
});

const plansFor = (path: string) => plansForTest(template, path, 'telemetry_series');

const API = '/v1/prometheus/api/v1';

describe('PromQL plans on 20,000 series', () => {
  it.each([
    ['a query', `${API}/query?query=${encodeURIComponent('avg(metric_7{gpu_id!="x"})')}`],
    ['the series list', `${API}/series?match[]=metric_7`],
    ['label values of a metric', `${API}/label/Hostname/values?match[]=metric_7`],
  ])('finds the series of %s through the metric name index', async (_what, path) => {
    const plan = await plansFor(path);
    expect(plan).toMatch(/(Bitmap )?Index Scan (using|on) telemetry_series_name_idx/);
    expect(plan).not.toMatch(/Seq Scan on telemetry_series/);
  });

  it('lists metric names by skipping through the name index', async () => {
    const plan = await plansFor(`${API}/label/__name__/values`);
    expect(plan).toMatch(/Index Only Scan using telemetry_series_name_idx/);
    expect(plan).not.toMatch(/Seq Scan on telemetry_series/);
  });
});
