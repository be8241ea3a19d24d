// npm run bench:query: p50/p99 of the query API on 5 million samples, each next to the same SQL
// sent straight to Postgres (the floor), in one run: while the samples are hot rows, and again once
// their chunks are compacted. Then a fleet question (average GPU utilisation of 10,000 GPUs per
// hour over 7 days) answered from history stored directly in compacted form (folded 1-hour
// rollups), next to the same question asked of raw hot rows.
import path from 'node:path';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import {
  fmt,
  freePort,
  percentile,
  printTable,
  require,
  root,
  serviceHeaders,
  sleep,
  startPostgres,
  startService,
} from './lib/harness.mjs';

const { encodeRollup } = require(path.join(root, 'apps/streamer/dist/codec/rollup.js'));

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
const FLEET_GPUS = Number(process.env.BENCH_FLEET_GPUS ?? 10_000);
const FLEET_DAYS = 7;
const FLEET_CALLS = Number(process.env.BENCH_FLEET_CALLS ?? 10);
const RAW_HOURS = Number(process.env.BENCH_RAW_HOURS ?? 2);
const HOUR = 3_600_000;
const DAY = 86_400_000;
const gpu = (i) => `GPU-bench-${String(i % GPUS).padStart(4, '0')}`;

/**
 * 10,000 GPUs x 7 days of GPU utilisation, stored as the streamer leaves history: one folded row of
 * 1-hour rollups per series per day (and the same for a second metric, so the index is not all
 * one metric's). Asked through the fleet API, and the same question asked of raw hot rows for
 * RAW_HOURS hours of the same fleet (raw rows for the whole week would be 200 million rows).
 */
async function fleet() {
  const url = await postgres.createDatabase('query_fleet', true);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const metrics = ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP'];
  const end = Math.floor(Date.now() / DAY) * DAY;
  const start = end - FLEET_DAYS * DAY;
  process.stderr.write(
    `fleet: ${FLEET_GPUS.toLocaleString()} GPUs x ${FLEET_DAYS} days of 1-hour rollups...\n`,
  );
  await pool.query(
    `INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, hostname)
     SELECT telemetry_series_key(m, g, n % 8, null, null, 'node-' || (n / 8), null, null, null, '{}'), m, g, n % 8, 'node-' || (n / 8)
     FROM (SELECT n, 'GPU-fleet-' || lpad(n::text, 5, '0') AS g FROM generate_series(0, ${FLEET_GPUS - 1}) n) gpus,
          unnest($1::text[]) m`,
    [metrics],
  );
  const { rows: series } = await pool.query('SELECT id, metric_name FROM telemetry_series ORDER BY id');
  for (let day = start; day < end; day += DAY) {
    await pool.query(`SELECT telemetry_ensure_day('telemetry_rollups_1h', $1::date)`, [
      new Date(day).toISOString().slice(0, 10),
    ]);
    await pool.query('INSERT INTO telemetry_rollup_days (day) VALUES ($1::date)', [
      new Date(day).toISOString().slice(0, 10),
    ]);
  }
  const client = await pool.connect();
  const stream = client.query(pgCopy.from('COPY telemetry_rollups_1h (series_id, start, data) FROM STDIN'));
  const done = new Promise((resolve, reject) => {
    stream.on('error', reject);
    stream.on('finish', resolve);
  });
  let chunk = '';
  for (const { id } of series) {
    for (let day = start; day < end; day += DAY) {
      // A day of a GPU's utilisation: 120 samples an hour, integer percent, swinging with the hour.
      const times = Float64Array.from({ length: 24 }, (_, h) => (day + h * HOUR) * 1000);
      const base = Float64Array.from({ length: 24 }, (_, h) =>
        Math.round(50 + 40 * Math.sin((Number(id) + h) / 4)),
      );
      const rollup = {
        times,
        count: times.map(() => 120),
        sum: base.map((b) => b * 120 + (Number(id) % 7)),
        min: base.map((b) => Math.max(0, b - 9)),
        max: base.map((b) => Math.min(100, b + 9)),
        last: base.map((b, h) => b + (h % 3) - 1),
      };
      chunk += `${id}\t${new Date(day).toISOString()}\t\\\\x${encodeRollup(rollup).toString('hex')}\n`;
      if (chunk.length > 1 << 20) {
        if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
        chunk = '';
      }
    }
  }
  stream.end(chunk);
  await done;
  client.release();

  // Raw hot rows of the same fleet for RAW_HOURS hours, a sample every 30 s.
  process.stderr.write(`fleet: ${RAW_HOURS} hours of raw rows for comparison...\n`);
  const rawStart = end - RAW_HOURS * HOUR;
  await pool.query(
    `SELECT count(*) FROM telemetry_ensure_chunks(ARRAY(SELECT $1::timestamptz + k * interval '1 hour' FROM generate_series(0, $2 - 1) k), 3600)`,
    [new Date(rawStart), RAW_HOURS],
  );
  for (let h = 0; h < RAW_HOURS; h++) {
    await pool.query(
      `INSERT INTO telemetry_samples (series_id, ts, value_dec)
       SELECT s.id, $1::timestamptz + k * interval '30 seconds', ((s.id + k) % 101)::int << 4
       FROM telemetry_series s, generate_series(0, 119) k WHERE s.metric_name = 'DCGM_FI_DEV_GPU_UTIL'`,
      [new Date(rawStart + h * HOUR)],
    );
  }
  await pool.query('VACUUM ANALYZE');
  await postgres.quiesce();

  streamer = await startService('streamer', streamerEnv(url, { TELEMETRY_COMPACT_AFTER: '7d' }));
  const fleetCase = {
    name: `fleet: avg GPU util of ${FLEET_GPUS.toLocaleString()} GPUs per hour, ${FLEET_DAYS} days (1h rollups)`,
    http: () =>
      `/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series?start_time=${new Date(start).toISOString()}&end_time=${new Date(end).toISOString()}&step=1h`,
    sql: () => [
      `SELECT series_id, data FROM telemetry_rollups_1h
       WHERE series_id = ANY(ARRAY(SELECT id FROM telemetry_series WHERE metric_name = 'DCGM_FI_DEV_GPU_UTIL'))
         AND start > $1::timestamptz - interval '1 day' AND start < $2`,
      [new Date(start), new Date(end)],
    ],
  };
  const rows = [await timeCase(fleetCase, FLEET_CALLS, pool)];
  const raw = [];
  for (let i = 0; i < FLEET_CALLS; i++) {
    const t = performance.now();
    // As the API asks it: the metric's series ids first, then the hot rows aggregated as stored
    // (decimals by their places, doubles apart), the ids as int[] as hot rows keep them.
    const { rows: ids } = await pool.query(
      `SELECT array_agg(id) AS ids FROM telemetry_series WHERE metric_name = 'DCGM_FI_DEV_GPU_UTIL'`,
    );
    await pool.query(
      `SELECT hour, sum(s) / sum(n) AS avg
       FROM (SELECT date_bin('1 hour', ts, TIMESTAMPTZ 'epoch') AS hour, count(*) AS n,
                    coalesce(sum(value), sum(value_dec >> 4)::float8 / (ARRAY[1,1e1,1e2,1e3,1e4,1e5,1e6,1e7,1e8,1e9]::float8[])[(value_dec & 15) + 1]) AS s
             FROM telemetry_samples
             WHERE series_id = ANY($3::int[]) AND ts >= $1 AND ts < $2
               AND (value_dec IS NOT NULL OR (value > '-Infinity' AND value < 'Infinity'))
             GROUP BY 1, value_dec & 15) AS by_places
       GROUP BY 1 ORDER BY 1`,
      [new Date(rawStart), new Date(end), ids[0].ids],
    );
    raw.push(performance.now() - t);
  }
  const scale = (FLEET_DAYS * 24) / RAW_HOURS;
  rows.push([
    `same, SQL on raw hot rows: ${RAW_HOURS} h measured (${(FLEET_GPUS * 120 * RAW_HOURS).toLocaleString()} rows)`,
    fmt(percentile(raw, 50), 1),
    fmt(percentile(raw, 99), 1),
    '-',
    '-',
    '-',
  ]);
  rows.push([
    `same, SQL on raw hot rows: ${FLEET_DAYS} days extrapolated (x${fmt(scale)})`,
    fmt(percentile(raw, 50) * scale, 0),
    '-',
    '-',
    '-',
    '-',
  ]);
  printTable(
    `Fleet query, ${FLEET_CALLS} calls, ms (SQL on rollups: fetching the rows the API decodes)`,
    ['query', 'SQL p50', 'SQL p99', 'API p50', 'API p99', 'API/SQL p50'],
    rows,
  );
  await streamer.stop();
  streamer = undefined;
  await pool.end();
}

const postgres = await startPostgres();
let streamer;

/** Times `calls` requests (and, where given, the SQL floor); returns a table row. */
async function timeCase(c, calls, pool) {
  const api = [];
  const direct = [];
  for (let i = 0; i < calls; i++) {
    let t = performance.now();
    const res = await fetch(`${streamer.url}${c.http(i)}`, { headers: serviceHeaders });
    if (!res.ok) throw new Error(`${c.name}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
    api.push(performance.now() - t);
    if (c.sql) {
      const [text, values] = c.sql(i);
      t = performance.now();
      await pool.query(text, values);
      direct.push(performance.now() - t);
    }
  }
  const floor = direct.length > 0;
  return [
    c.name,
    floor ? fmt(percentile(direct, 50), 1) : '-',
    floor ? fmt(percentile(direct, 99), 1) : '-',
    fmt(percentile(api, 50), 1),
    fmt(percentile(api, 99), 1),
    floor ? fmt(percentile(api, 50) / percentile(direct, 50), 2) : '-',
  ];
}

function streamerEnv(url, env) {
  return {
    DATABASE_URL: url,
    PORT: String(freePort()),
    HOST: '127.0.0.1',
    QUEUE_URL: 'http://127.0.0.1:9',
    TELEMETRY_RETENTION: '0',
    ...env,
  };
}

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

  // Hot first: nothing is compacted while these run.
  streamer = await startService('streamer', streamerEnv(url, { TELEMETRY_COMPACT_AFTER: '7d' }));
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
      name: 'telemetry, one metric, 6 hours ago, limit 1000',
      http: (i) =>
        `/v1/gpus/${gpu(i * 5)}/telemetry?metric=${METRICS[i % 5]}&start_time=${iso(now - 6 * 3_600_000)}&end_time=${iso(now - 5 * 3_600_000)}&limit=1000`,
      sql: (i) => [
        `SELECT x.* FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
         WHERE s.gpu_id = $1 AND s.metric_name = $2 AND x.ts >= $3 AND x.ts < $4 ORDER BY x.ts, x.series_id LIMIT 1001`,
        [gpu(i * 5), METRICS[i % 5], iso(now - 6 * 3_600_000), iso(now - 5 * 3_600_000)],
      ],
      compactedSql: (i) => [
        `SELECT * FROM telemetry_between(ARRAY(SELECT id FROM telemetry_series WHERE gpu_id = $1 AND metric_name = $2), $3, $4)
         ORDER BY ts, series_id LIMIT 1001`,
        [gpu(i * 5), METRICS[i % 5], iso(now - 6 * 3_600_000), iso(now - 5 * 3_600_000)],
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
      compactedSql: (i) => [
        `SELECT date_bin('5 minutes', ts, TIMESTAMPTZ 'epoch'), count(*), avg(value), min(value), max(value)
         FROM telemetry_between(ARRAY(SELECT id FROM telemetry_series WHERE gpu_id = $1 AND metric_name = $2), $3, $4)
         WHERE value > '-Infinity' AND value < 'Infinity' GROUP BY 1 ORDER BY 1`,
        [gpu(i * 13), METRICS[i % 5], iso(now - 6 * 3_600_000), iso(now)],
      ],
    },
    {
      name: 'GPU list, 1000 GPUs',
      http: () => `/v1/gpus?limit=1000`,
      sql: () => ['SELECT * FROM gpus ORDER BY gpu_id LIMIT 1001', []],
      compacted: false,
    },
  ];
  const hot = [];
  for (const c of cases) hot.push(await timeCase(c, CALLS, pool));
  printTable(
    `Query API on ${ROWS.toLocaleString()} hot samples (${GPUS} GPUs), ${CALLS} calls each, ms`,
    ['query', 'SQL p50', 'SQL p99', 'API p50', 'API p99', 'API/SQL p50'],
    hot,
  );

  // The same questions once the closed chunks are blocks (and rollups).
  await streamer.stop();
  process.stderr.write('compacting the closed chunks...\n');
  streamer = await startService('streamer', streamerEnv(url, { TELEMETRY_COMPACT_AFTER: '10s' }));
  for (;;) {
    const { rows: left } = await pool.query(
      `SELECT count(*)::int AS n FROM telemetry_chunks WHERE compacted_at IS NULL AND chunk_end <= now() - interval '10 seconds'`,
    );
    if (left[0].n === 0) break;
    await sleep(500);
  }
  await pool.query('VACUUM ANALYZE telemetry_blocks, telemetry_rollups_1m, telemetry_rollups_1h');
  const compacted = [];
  for (const c of cases.filter((c) => c.compacted !== false)) {
    compacted.push(await timeCase({ ...c, sql: c.compactedSql }, CALLS, pool));
  }
  printTable(
    `The same once compacted (every closed chunk in blocks; the last hour mostly hot), ${CALLS} calls each, ms; SQL: decoded by Postgres (telemetry_between)`,
    ['query', 'SQL p50', 'SQL p99', 'API p50', 'API p99', 'API/SQL p50'],
    compacted,
  );
  await streamer.stop();
  streamer = undefined;
  await pool.end();

  await fleet();
  await pool.end();
} finally {
  await streamer?.stop();
  process.on('uncaughtException', () => undefined);
  await postgres.stop();
}
await sleep(0);
process.exit(0);
