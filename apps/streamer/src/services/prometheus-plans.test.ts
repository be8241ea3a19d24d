import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { StreamerDatabase } from '../streamer.database';
import { logPlans, plansFor as plansForTest } from '../testing/query-plans';

/**
 * A selector reads only the series it can match: on 20,000 series (20 metrics of 1,000 GPUs on
 * 125 hosts), the plans Postgres runs (captured with auto_explain) find a metric's series through
 * telemetry_series_name_idx, and the series whose matchers name label values (one GPU, two hosts)
 * through the label index, never by a sequential scan of every series. Metric names are listed
 * by skipping through the name index, other labels and their values from telemetry_label_values.
 */
let template: TestDatabase<StreamerDatabase>;

beforeAll(async () => {
  template = await createTestDatabase<StreamerDatabase>();
  const pool = template.pool;
  await pool.query(`
    INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, hostname)
    SELECT telemetry_series_key(m, g, 0, null, null, h, null, null, null, '{}'), m, g, 0, h
    FROM (SELECT 'GPU-plan-' || lpad(n::text, 4, '0') AS g, 'node-' || n / 8 AS h
          FROM generate_series(0, 999) AS n) gpus,
         (SELECT 'metric_' || k AS m FROM generate_series(0, 19) AS k) metrics`);
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

  it.each([
    ['one GPU of a metric', 'metric_7{UUID="GPU-plan-0042"}'],
    ['one GPU of every metric', '{UUID="GPU-plan-0042"}'],
    ["two hosts' GPUs", 'count({Hostname=~"node-3|node-4", gpu="0"})'],
  ])('finds %s through the label index', async (_what, query) => {
    const plan = await plansFor(`${API}/query?query=${encodeURIComponent(query)}`);
    expect(plan).toMatch(/Bitmap Index Scan on telemetry_series_labels_idx/);
    expect(plan).not.toMatch(/Seq Scan on telemetry_series/);
  });

  it.each([
    ['label names', `${API}/labels`],
    ['the values of a label', `${API}/label/Hostname/values`],
  ])('lists %s from the label values table, not from every series', async (_what, path) => {
    const plan = await plansForTest(template, path, 'telemetry_');
    expect(plan).toMatch(/(Index Only Scan using|Bitmap Index Scan on) telemetry_label_values_pkey/);
    expect(plan).not.toMatch(/Seq Scan on telemetry_series/);
  });

  it("reads a selector's hot rows and stale markers in one statement", async () => {
    const end = Math.floor(Date.now() / 1000);
    const query = encodeURIComponent('metric_7{UUID="GPU-plan-0042"}');
    const plan = await plansForTest(
      template,
      `${API}/query_range?query=${query}&start=${end - 3600}&end=${end}&step=60`,
      'telemetry_samples',
    );
    expect(plan.match(/duration:/g)).toHaveLength(1);
    expect(plan).toMatch(/Index (Only )?Scan using telemetry_stale_pkey on telemetry_stale/);
  });

  it("reads a thousand series' hot rows in one process, without starting parallel workers", async () => {
    // 120,000 rows: workers would each sort their share for the leader to merge and join, which
    // takes longer than one process hashing them all (PARALLEL_SETUP_COST).
    const end = Math.floor(Date.now() / 1000);
    const plan = await plansForTest(
      template,
      `${API}/query_range?query=${encodeURIComponent('avg(metric_7)')}&start=${end - 3600}&end=${end}&step=60`,
      'telemetry_samples',
    );
    expect(plan).toMatch(/Scan (using|on) telemetry_samples/);
    expect(plan).not.toMatch(/Gather/);
  });

  it('lists metric names by skipping through the name index', async () => {
    const plan = await plansFor(`${API}/label/__name__/values`);
    expect(plan).toMatch(/Index Only Scan using telemetry_series_name_idx/);
    expect(plan).not.toMatch(/Seq Scan on telemetry_series/);
  });
});
