// npm run bench:query: p50/p99 of the query API on 5 million samples, each next to the same SQL
// sent straight to Postgres (the floor), in one run.
import pg from 'pg';
import {
  fmt,
  freePort,
  percentile,
  printTable,
  serviceHeaders,
  sleep,
  startPostgres,
  startService,
} from './lib/harness.mjs';

const ROWS = Number(process.env.BENCH_ROWS ?? 5_000_000);
const GPUS = 1000;
const METRICS = [
  'DCGM_FI_DEV_GPU_UTIL',
  'DCGM_FI_DEV_GPU_TEMP',
  'DCGM_FI_DEV_POWER_USAGE',
  'DCGM_FI_DEV_FB_USED',
  'DCGM_FI_DEV_SM_CLOCK',
];
const CALLS = Number(process.env.BENCH_CALLS ?? 200);
const gpu = (i) => `GPU-bench-${String(i % GPUS).padStart(4, '0')}`;

const postgres = await startPostgres();
let streamer;
try {
  const url = await postgres.createDatabase('query_bench', true);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  // One sample per GPU per metric every 30 s, ending now: 5M rows are ~10 hours of a 1000-GPU fleet.
  const perStep = GPUS * METRICS.length;
  const steps = Math.ceil(ROWS / perStep);
  process.stderr.write(
    `loading ${ROWS.toLocaleString()} samples (${steps} scrapes of ${GPUS} GPUs x ${METRICS.length} metrics)...\n`,
  );
  await pool.query(
    `INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, model_name, hostname, labels)
     SELECT telemetry_series_key(m, g, n % 8, null, 'NVIDIA H100 80GB HBM3', 'node-' || (n / 8), null, null, null, l),
            m, g, n % 8, 'NVIDIA H100 80GB HBM3', 'node-' || (n / 8), l
     FROM (SELECT n, 'GPU-bench-' || lpad(n::text, 4, '0') AS g, '{"pci_bus_id":"00000000:18:00.0"}'::jsonb AS l
           FROM generate_series(0, ${GPUS - 1}) n) gpus, unnest($1::text[]) m`,
    [METRICS],
  );
  await pool.query(
    `SELECT count(*) FROM telemetry_ensure_chunks(
       ARRAY(SELECT now() - k * interval '1 hour' FROM generate_series(0, ceil($1 / 3600.0)::int) k), 3600)`,
    [steps * 30],
  );
  const started = performance.now();
  for (let step = 0; step < steps; step += 100) {
    await pool.query(
      `INSERT INTO telemetry_samples (series_id, ts, value)
       SELECT s.id, now() - (k * interval '30 seconds'), random() * 100
       FROM generate_series($1::int, $2::int) k, telemetry_series s`,
      [step, Math.min(step + 99, steps - 1)],
    );
  }
  await pool.query(
    `INSERT INTO gpus (gpu_id, gpu_index, hostname, first_seen, last_seen, metrics)
     SELECT 'GPU-bench-' || lpad(g::text, 4, '0'), g % 8, 'node-' || (g / 8), now() - interval '1 day', now(), $1::text[]
     FROM generate_series(0, ${GPUS - 1}) g`,
    [METRICS],
  );
  await pool.query('VACUUM ANALYZE telemetry_samples');
  await pool.query('ANALYZE telemetry_series');
  process.stderr.write(`loaded in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);

  streamer = await startService('streamer', {
    DATABASE_URL: url,
    PORT: String(freePort()),
    HOST: '127.0.0.1',
    QUEUE_URL: 'http://127.0.0.1:9',
    TELEMETRY_RETENTION: '0',
  });
  const now = Date.now();
  const iso = (ms) => new Date(ms).toISOString();
  const cases = [
    {
      name: 'telemetry, one metric, last hour, limit 1000',
      http: (i) =>
        `/v1/gpus/${gpu(i * 7)}/telemetry?metric=${METRICS[i % 5]}&start_time=${iso(now - 3_600_000)}&end_time=${iso(now)}&limit=1000`,
      sql: (i) => [
        `SELECT x.* FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
         WHERE s.gpu_id = $1 AND s.metric_name = $2 AND x.ts >= $3 AND x.ts < $4 ORDER BY x.ts, x.series_id LIMIT 1001`,
        [gpu(i * 7), METRICS[i % 5], iso(now - 3_600_000), iso(now)],
      ],
    },
    {
      name: 'telemetry, all metrics, last hour, limit 1000',
      http: (i) =>
        `/v1/gpus/${gpu(i * 11)}/telemetry?start_time=${iso(now - 3_600_000)}&end_time=${iso(now)}&limit=1000`,
      sql: (i) => [
        `SELECT x.* FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
         WHERE s.gpu_id = $1 AND x.ts >= $2 AND x.ts < $3 ORDER BY x.ts, x.series_id LIMIT 1001`,
        [gpu(i * 11), iso(now - 3_600_000), iso(now)],
      ],
    },
    {
      name: 'series, one metric, 6 hours, 5 min buckets',
      http: (i) =>
        `/v1/gpus/${gpu(i * 13)}/metrics/${METRICS[i % 5]}/series?start_time=${iso(now - 6 * 3_600_000)}&end_time=${iso(now)}&step=5m`,
      sql: (i) => [
        `SELECT date_bin('5 minutes', x.ts, TIMESTAMPTZ 'epoch'), count(*), avg(value), min(value), max(value)
         FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
         WHERE s.gpu_id = $1 AND s.metric_name = $2 AND x.ts >= $3 AND x.ts < $4
           AND value > '-Infinity' AND value < 'Infinity' GROUP BY 1 ORDER BY 1`,
        [gpu(i * 13), METRICS[i % 5], iso(now - 6 * 3_600_000), iso(now)],
      ],
    },
    {
      name: 'GPU list, 1000 GPUs',
      http: () => `/v1/gpus?limit=1000`,
      sql: () => ['SELECT * FROM gpus ORDER BY gpu_id LIMIT 1001', []],
    },
  ];
  const rows = [];
  for (const c of cases) {
    const api = [];
    const direct = [];
    for (let i = 0; i < CALLS; i++) {
      let t = performance.now();
      const res = await fetch(`${streamer.url}${c.http(i)}`, { headers: serviceHeaders });
      if (!res.ok) throw new Error(`${c.name}: ${res.status} ${await res.text()}`);
      await res.arrayBuffer();
      api.push(performance.now() - t);
      const [text, values] = c.sql(i);
      t = performance.now();
      await pool.query(text, values);
      direct.push(performance.now() - t);
    }
    rows.push([
      c.name,
      fmt(percentile(direct, 50), 1),
      fmt(percentile(direct, 99), 1),
      fmt(percentile(api, 50), 1),
      fmt(percentile(api, 99), 1),
      fmt(percentile(api, 50) / percentile(direct, 50), 2),
    ]);
  }
  printTable(
    `Query API on ${ROWS.toLocaleString()} samples (${GPUS} GPUs), ${CALLS} calls each, ms`,
    ['query', 'SQL p50', 'SQL p99', 'API p50', 'API p99', 'API/SQL p50'],
    rows,
  );
  await pool.end();
} finally {
  await streamer?.stop();
  process.on('uncaughtException', () => undefined);
  await postgres.stop();
}
await sleep(0);
process.exit(0);
