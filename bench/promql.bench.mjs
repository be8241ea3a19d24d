// npm run bench:promql: the DCGM dashboard's queries (the compatibility suite's, every host and GPU
// selected) over a 1,000-GPU fleet, answered by the gateway's /prometheus API over stored telemetry
// and by a real Prometheus holding the same samples, in one run: the last hour at 15 s steps (stored
// as a streamer with TELEMETRY_SLICE=10m leaves it: closed slices compacted, the newest minutes hot rows), then 7 days at 1 h steps (stored compacted: blocks and folded 1-hour
// rollups, as the streamer leaves history). p50/p99 of each, their ratio, and whether both answered
// the same. Needs Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN); run it on a quiet machine.
import { loadavg } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import {
  fmt,
  freePort,
  percentile,
  printTable,
  require,
  root,
  SERVICE_TOKEN,
  startPostgres,
  startService,
} from './lib/harness.mjs';

const { encodeBlock } = require(path.join(root, 'apps/streamer/dist/codec/block-codec.js'));
const { encodeRollup, rollUp, HOUR_US } = require(path.join(root, 'apps/streamer/dist/codec/rollup.js'));
const { copySeriesRows, dropCompactedPartitions } = require(
  path.join(root, 'apps/streamer/dist/services/compaction.queries.js'),
);
const { ChunkCompactor } = require(path.join(root, 'apps/streamer/dist/services/chunk-compactor.js'));
const { hotCopyChunks, HOT_COPY_COLUMNS } = require(
  path.join(root, 'apps/streamer/dist/services/telemetry-write.queries.js'),
);
const { copyIn } = require(path.join(root, 'libs/db/dist/index.js'));
const { createStreamerMetrics } = require(path.join(root, 'apps/streamer/dist/services/streamer.metrics.js'));
const { createLogger } = require(path.join(root, 'libs/service-kit/dist/index.js'));
const { Registry } = require('prom-client');
const compat = require(path.join(root, 'libs/promql/dist/compat/index.js'));

const GPUS = Number(process.env.BENCH_GPUS ?? 1000);
const GPUS_PER_HOST = 8;
const CALLS_1H = Number(process.env.BENCH_CALLS_1H ?? 20);
const CALLS_7D = Number(process.env.BENCH_CALLS_7D ?? 5);
/** The week is scraped every minute (every 15 s would be 4x the samples to load into both). */
const SCRAPE_7D_MS = Number(process.env.BENCH_7D_SCRAPE_SECONDS ?? 60) * 1000;
const METRICS_7D = ['DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE'];
const HOUR = 3_600_000;
const DAY = 86_400_000;
const ADMIN_KEY = `bench-admin-${SERVICE_TOKEN.slice(6, 40)}`;

// The dashboard as Grafana sends it with every host and every GPU selected.
const ALL = 'Hostname=~".*", gpu=~".*"';
const DASHBOARD = compat.DCGM_DASHBOARD.map((q) => q.query).filter((q) => q.includes(ALL));
const METRICS_1H = [...new Set(DASHBOARD.map((q) => /DCGM_FI_\w+/.exec(q)[0]))];
// The same panels with one host picked, then one of its GPUs (the label index finds their series).
const ONE_HOST = 'Hostname=~"host-042", gpu=~".*"';
const ONE_GPU = 'Hostname=~"host-042", gpu=~"3"';
const PICKED = DASHBOARD.slice(0, 2).flatMap((q) => [q.replace(ALL, ONE_HOST), q.replace(ALL, ONE_GPU)]);
/** Label lists as Grafana's query editor asks for them, without match[]. */
const LABEL_LISTS = ['labels', 'label/Hostname/values', 'label/UUID/values'];
// What the week's data holds: the dashboard's temperature and power panels, and the same panels
// over hourly maxima, which 1-hour rollups answer.
const WEEK = [
  ...DASHBOARD.filter((q) => METRICS_7D.some((m) => q.includes(m))),
  `max(max_over_time(DCGM_FI_DEV_GPU_TEMP{${ALL}}[1h])) by (Hostname, gpu, uuid)`,
  `sum(max(max_over_time(DCGM_FI_DEV_POWER_USAGE{${ALL}}[1h])) by (gpu))`,
];

/** The fleet's series: labels as dcgm-exporter writes them. */
function fleet(metrics) {
  const series = [];
  for (const metric of metrics) {
    for (let g = 0; g < GPUS; g++) {
      const host = `host-${String(Math.floor(g / GPUS_PER_HOST)).padStart(3, '0')}`;
      const gpu = g % GPUS_PER_HOST;
      series.push({
        metric,
        index: series.length,
        labels: {
          __name__: metric,
          DCGM_FI_DRIVER_VERSION: '535.129.03',
          Hostname: host,
          UUID: `GPU-${String(g).padStart(8, '0')}-aaaa-bbbb-cccc-000000000000`,
          device: `nvidia${gpu}`,
          gpu: String(gpu),
          instance: `${host}:9400`,
          job: 'dcgm-exporter',
          modelName: 'NVIDIA H100 80GB HBM3',
        },
      });
    }
  }
  return series;
}

/** A series' value at a time: a smooth swing per GPU, at the exporter's precision for the metric. */
function valueAt(s, t) {
  const x = Math.sin(t / 600_000 + s.index) + 0.3 * Math.sin(t / 47_000 + 2 * s.index);
  switch (s.metric) {
    case 'DCGM_FI_DEV_GPU_TEMP':
      return Math.round(60 + 20 * x);
    case 'DCGM_FI_DEV_POWER_USAGE':
      return Math.round((400 + 250 * x) * 1000) / 1000;
    case 'DCGM_FI_DEV_SM_CLOCK':
      return 210 + 15 * Math.round(50 + 40 * x);
    case 'DCGM_FI_DEV_FB_USED':
      return Math.round(40_000 + 30_000 * x);
    default:
      return Math.round((0.5 + 0.4 * x) * 1e6) / 1e6;
  }
}

/** The samples of every series at every `stepMs` in [from, to), each GPU's scrape a few ms apart. */
function samplesOf(series, from, to, stepMs) {
  return series.map((s) => {
    const timestamps = [];
    for (let t = from + (s.index % 7) * 3; t < to; t += stepMs) timestamps.push(t);
    return { s, timestamps, values: Float64Array.from(timestamps, (t) => valueAt(s, t)) };
  });
}

/** The series rows, labels stored as the collector stores a dcgm-exporter sample; returns their ids. */
async function storeSeries(pool, series) {
  const rows = series.map(({ labels }) => {
    const { __name__, UUID, gpu, device, modelName, Hostname, ...rest } = labels;
    return { m: __name__, g: UUID, i: Number(gpu), d: device, mo: modelName, h: Hostname, l: rest };
  });
  const { rows: stored } = await pool.query(
    `INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, device, model_name, hostname, labels)
     SELECT telemetry_series_key(x.m, x.g, x.i, x.d, x.mo, x.h, null, null, null, x.l), x.m, x.g, x.i, x.d, x.mo, x.h, x.l
     FROM jsonb_to_recordset($1::jsonb) AS x(m text, g text, i int, d text, mo text, h text, l jsonb)
     RETURNING id, metric_name, gpu_id`,
    [JSON.stringify(rows)],
  );
  const ids = new Map(stored.map((r) => [`${r.metric_name} ${r.gpu_id}`, Number(r.id)]));
  return rows.map((r) => ids.get(`${r.m} ${r.g}`));
}

/**
 * Hot rows by the streamer's own binary COPY, in the order ingest writes them: scrape round after
 * scrape round, each batch of 20 hosts' scrapes (STREAMER_BATCH messages) metric by metric; in
 * the slices of their chunks (sliceMs). (`data` is metric by metric, GPU by GPU, as `fleet` makes it.)
 */
async function storeHot(pool, ids, data, chunkMs) {
  const chunks = new Set();
  for (const d of data)
    for (const t of d.timestamps) chunks.add(new Date(Math.floor(t / chunkMs) * chunkMs).toISOString());
  await pool.query('SELECT count(*) FROM telemetry_ensure_chunks($1::timestamptz[], $2)', [
    [...chunks],
    chunkMs / 1000,
  ]);
  const rows = { seriesIds: [], us: [], values: [] };
  const metrics = data.length / GPUS;
  const rounds = Math.max(...data.map((d) => d.timestamps.length));
  const batchGpus = 20 * GPUS_PER_HOST;
  for (let n = 0; n < rounds; n++) {
    for (let first = 0; first < GPUS; first += batchGpus) {
      for (let m = 0; m < metrics; m++) {
        for (let g = first; g < Math.min(GPUS, first + batchGpus); g++) {
          const k = m * GPUS + g;
          const { timestamps, values } = data[k];
          if (n >= timestamps.length) continue;
          rows.seriesIds.push(ids[k]);
          rows.us.push(timestamps[n] * 1000);
          rows.values.push(values[n]);
        }
      }
    }
  }
  const client = await pool.connect();
  try {
    await copyIn(client, HOT_COPY_COLUMNS, hotCopyChunks(rows), 'binary');
  } finally {
    client.release();
  }
}

/**
 * History as the streamer leaves it once compacted and folded: one block per series per hour
 * (chunks marked compacted), and one row of 1-hour rollups per series per day.
 */
async function storeCompacted(pool, ids, data, from, to) {
  const hours = [];
  for (let t = from; t < to; t += HOUR) hours.push(new Date(t).toISOString());
  await pool.query('SELECT count(*) FROM telemetry_ensure_chunks($1::timestamptz[], 3600)', [hours]);
  for (let day = Math.floor(from / DAY) * DAY; day < to; day += DAY) {
    for (const table of ['telemetry_blocks', 'telemetry_rollups_1h']) {
      await pool.query('SELECT telemetry_ensure_day($1, $2::date)', [
        table,
        new Date(day).toISOString().slice(0, 10),
      ]);
    }
  }
  const client = await pool.connect();
  let blocks = [];
  const rollups = [];
  for (let k = 0; k < data.length; k++) {
    const { timestamps, values } = data[k];
    let i = 0;
    for (let day = Math.floor(from / DAY) * DAY; day < to; day += DAY) {
      // A whole day's 1-hour rollups are folded into one row; a day cut by the range keeps one per chunk.
      const whole = day >= from && day + DAY <= to;
      const dayFrom = i;
      for (let hour = Math.max(day, from); hour < day + DAY && hour < to; hour += HOUR) {
        const start = i;
        while (i < timestamps.length && timestamps[i] < hour + HOUR) i++;
        if (i === start) continue;
        const block = {
          times: Float64Array.from(timestamps.slice(start, i), (t) => t * 1000),
          values: values.slice(start, i),
        };
        blocks.push({ seriesId: ids[k], start: hour, n: i - start, data: encodeBlock(block) });
        if (!whole)
          rollups.push({
            seriesId: ids[k],
            start: hour,
            data: encodeRollup(rollUp(block, HOUR_US, { edges: true })),
          });
      }
      if (whole && i > dayFrom) {
        const dayBlock = {
          times: Float64Array.from(timestamps.slice(dayFrom, i), (t) => t * 1000),
          values: values.slice(dayFrom, i),
        };
        rollups.push({
          seriesId: ids[k],
          start: day,
          data: encodeRollup(rollUp(dayBlock, HOUR_US, { edges: true })),
        });
      }
    }
    if (blocks.length > 20_000) {
      await copySeriesRows(client, 'telemetry_blocks', blocks);
      blocks = [];
    }
  }
  await copySeriesRows(client, 'telemetry_blocks', blocks);
  await copySeriesRows(client, 'telemetry_rollups_1h', rollups);
  client.release();
  await pool.query(
    `UPDATE telemetry_chunks c SET compacted_at = now(), exact_rollups = true, blocks = b.n, samples = b.samples
     FROM (SELECT chunk_start, count(*)::int AS n, sum(n) AS samples FROM telemetry_blocks GROUP BY 1) b
     WHERE b.chunk_start = c.chunk_start`,
  );
  const folded = [];
  for (let day = Math.ceil(from / DAY) * DAY; day + DAY <= to; day += DAY)
    folded.push(new Date(day).toISOString().slice(0, 10));
  await pool.query('INSERT INTO telemetry_rollup_days (day) SELECT unnest($1::date[])', [folded]);
  await pool.query('SELECT telemetry_drop_compacted_partitions()');
}

/** The same samples into Prometheus by remote write, in time order. */
async function writeToPrometheus(prometheus, data) {
  await compat.remoteWriteDataset(
    `${prometheus.url}/api/v1/write`,
    data.map(({ s, timestamps, values }) => ({
      labels: Object.entries(s.labels)
        .map(([name, value]) => ({ name, value }))
        .sort((a, b) => (a.name < b.name ? -1 : 1)),
      timestamps,
      values,
    })),
  );
}

async function post(url, form, headers = {}) {
  const started = performance.now();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  const body = await res.json();
  return { ms: performance.now() - started, body };
}

/**
 * How many timed calls a query gets: five times as many where both answered the warm-up in under
 * 50 ms, so that one slow call of a few milliseconds is not the p99 by itself.
 */
const callsFor = (oursMs, theirsMs, calls) => (oursMs < 50 && theirsMs < 50 ? calls * 5 : calls);

/**
 * Asks both, alternating, once to warm up (that answer is returned) and then `callsFor` times
 * more, timed; returns the warm-up answers and each side's times.
 */
async function timeBoth(ours, theirs, calls) {
  const times = { ours: [], theirs: [] };
  let first;
  let total = calls;
  for (let i = 0; i < total + 1; i++) {
    const a = await ours();
    const b = await theirs();
    if (i === 0) {
      first = [a.body, b.body];
      total = callsFor(a.ms, b.ms, calls);
    } else {
      times.ours.push(a.ms);
      times.theirs.push(b.ms);
    }
  }
  return { first, ...times };
}

/** A table row: p50 and p99 of each side, the p99 ratio, and whether the answers were the same. */
const row = (label, count, { ours, theirs }, same) => [
  label,
  String(count),
  fmt(percentile(theirs, 50), 1),
  fmt(percentile(theirs, 99), 1),
  fmt(percentile(ours, 50), 1),
  fmt(percentile(ours, 99), 1),
  fmt(percentile(ours, 99) / percentile(theirs, 99), 2),
  same,
];

/** Times each query on both; returns table rows and how many answers differed. */
async function race(gatewayUrl, prometheus, queries, range, calls) {
  const rows = [];
  let differing = 0;
  for (const query of queries) {
    const form = {
      query,
      start: String(range.start / 1000),
      end: String(range.end / 1000),
      step: String(range.step / 1000),
    };
    const timed = await timeBoth(
      async () => {
        const a = await post(`${gatewayUrl}/prometheus/api/v1/query_range`, form, {
          authorization: `Bearer ${ADMIN_KEY}`,
        });
        if (a.body.status !== 'success') throw new Error(`${query}: ${JSON.stringify(a.body)}`);
        return a;
      },
      () => post(`${prometheus.url}/api/v1/query_range`, form),
      calls,
    );
    const [oursFirst, theirsFirst] = timed.first;
    const diff = compat.compareAnswers(theirsFirst, oursFirst);
    if (diff.length) differing++;
    const label = query
      .replace(`{${ALL}}`, '')
      .replace(`${ALL}`, '')
      .replace(/\{(Hostname=.*?)\}/, ' {$1}');
    rows.push(
      row(label, oursFirst.data.result.length, timed, diff.length ? `differ (${diff.length})` : 'same'),
    );
  }
  return { rows, differing };
}

async function get(url, headers = {}) {
  const started = performance.now();
  const res = await fetch(url, { headers });
  const body = await res.json();
  return { ms: performance.now() - started, body };
}

/** Times each label list on both, as race() does queries. */
async function raceLists(gatewayUrl, prometheus, paths, calls) {
  const rows = [];
  let differing = 0;
  for (const p of paths) {
    const timed = await timeBoth(
      async () => {
        const a = await get(`${gatewayUrl}/prometheus/api/v1/${p}`, { authorization: `Bearer ${ADMIN_KEY}` });
        if (a.body.status !== 'success') throw new Error(`${p}: ${JSON.stringify(a.body)}`);
        return a;
      },
      () => get(`${prometheus.url}/api/v1/${p}`),
      calls,
    );
    const [ours, theirs] = timed.first.map((body) => body.data);
    const same = JSON.stringify(ours) === JSON.stringify(theirs);
    if (!same) differing++;
    rows.push(row(`/api/v1/${p}`, ours.length, timed, same ? 'same' : 'differ'));
  }
  return { rows, differing };
}

async function phase(name, { metrics, from, to, scrapeMs, compacted, queries, range, calls, lists = [] }) {
  const series = fleet(metrics);
  const data = samplesOf(series, from, to, scrapeMs);
  const samples = data.reduce((n, d) => n + d.timestamps.length, 0);
  process.stderr.write(
    `${name}: ${series.length.toLocaleString()} series, ${samples.toLocaleString()} samples...\n`,
  );
  const url = await postgres.createDatabase(`promql_${compacted ? 'week' : 'hour'}`, true);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  let started = performance.now();
  const ids = await storeSeries(pool, series);
  if (compacted) await storeCompacted(pool, ids, data, from, to);
  else {
    // As a streamer with TELEMETRY_SLICE=10m leaves the last hour: 10-minute slices of hourly
    // chunks, those closed for 10 minutes compacted, a closed chunk's slices merged; the newest
    // 10-20 minutes hot.
    await storeHot(pool, ids, data, 10 * 60_000);
    const compactor = new ChunkCompactor({
      pool,
      logger: createLogger('streamer', 'warn'),
      metrics: createStreamerMetrics(new Registry()),
      compactAfterMs: 10 * 60_000,
      chunkMs: HOUR,
    });
    const done = await compactor.compactDue();
    await dropCompactedPartitions(pool);
    const merged = await compactor.mergeDue();
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM telemetry_samples');
    process.stderr.write(
      `  ${done.chunks} slices compacted, ${merged} chunk merged, ${rows[0].n.toLocaleString()} samples hot\n`,
    );
  }
  await pool.query('VACUUM ANALYZE');
  process.stderr.write(`  stored in ${fmt((performance.now() - started) / 1000, 0)} s\n`);
  started = performance.now();
  const prometheus = await compat.startPrometheus();
  await writeToPrometheus(prometheus, data);
  process.stderr.write(
    `  remote-written to Prometheus ${prometheus.version} in ${fmt((performance.now() - started) / 1000, 0)} s\n`,
  );
  await postgres.quiesce();
  const port = freePort();
  const streamer = await startService('streamer', {
    DATABASE_URL: url,
    PORT: String(port),
    HOST: '127.0.0.1',
    QUEUE_URL: 'http://127.0.0.1:9',
    TELEMETRY_RETENTION: '0',
    TELEMETRY_COMPACT_AFTER: '7d',
  });
  const gateway = await startService('gateway', {
    DATABASE_URL: url,
    PORT: String(freePort()),
    HOST: '127.0.0.1',
    GATEWAY_ADMIN_KEY: ADMIN_KEY,
    GATEWAY_STREAMER_URLS: streamer.url,
    GATEWAY_QUEUE_URLS: 'http://127.0.0.1:9',
    GATEWAY_COLLECTOR_URLS: 'http://127.0.0.1:9',
    GATEWAY_RECORDS: 'false',
    GATEWAY_RATE_LIMIT: '100000',
  });
  try {
    const { rows, differing } = await race(gateway.url, prometheus, queries, range, calls);
    const listed = await raceLists(gateway.url, prometheus, lists, calls);
    rows.push(...listed.rows);
    printTable(
      `${name}: ${GPUS.toLocaleString()} GPUs, ${calls} calls each after a warm-up (${calls * 5} where both answer in under 50 ms), ms (ratio: ours / Prometheus at p99)`,
      [
        'query',
        'series or values',
        'Prometheus p50',
        'Prometheus p99',
        'gateway p50',
        'gateway p99',
        'p99 ratio',
        'answers',
      ],
      rows,
    );
    return differing + listed.differing;
  } finally {
    await gateway.stop();
    await streamer.stop();
    await prometheus.stop();
    await pool.end();
    await postgres.dropDatabase(`promql_${compacted ? 'week' : 'hour'}`);
  }
}

const [load1] = loadavg();
process.stderr.write(
  `load average ${load1.toFixed(2)}${load1 >= 1 ? ' (not quiet: figures will be noisy)' : ''}\n`,
);
const postgres = await startPostgres();
let differing = 0;
try {
  const now = Math.floor(Date.now() / 1000) * 1000;
  differing += await phase(
    'Last hour at 15 s steps (TELEMETRY_SLICE=10m: closed slices compacted, the newest 10-20 minutes hot)',
    {
      metrics: METRICS_1H,
      from: now - HOUR - 10 * 60_000,
      to: now,
      scrapeMs: 15_000,
      compacted: false,
      queries: [...DASHBOARD, ...PICKED],
      range: { start: now - HOUR, end: now, step: 15_000 },
      calls: CALLS_1H,
      // As Grafana's variables ask them: with the panel's range, so each series is probed for data in it.
      lists: [
        ...LABEL_LISTS,
        ...LABEL_LISTS.map((p) => `${p}?start=${(now - HOUR) / 1000}&end=${now / 1000}`),
      ],
    },
  );
  // A week of history ending at the last whole hour, compacted.
  const end = Math.floor(now / HOUR) * HOUR - HOUR;
  const start = end - 7 * DAY;
  differing += await phase('7 days at 1 h steps (blocks and folded 1-hour rollups)', {
    metrics: METRICS_7D,
    from: start - HOUR, // the first window's hour
    to: end + 1, // the sample on the last hour
    scrapeMs: SCRAPE_7D_MS,
    compacted: true,
    queries: WEEK,
    range: { start, end, step: HOUR },
    calls: CALLS_7D,
  });
} finally {
  await postgres.stop();
}
if (differing > 0) {
  process.stderr.write(`${differing} queries answered differently from Prometheus\n`);
  process.exitCode = 1;
}
