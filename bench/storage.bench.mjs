// npm run bench:storage: bytes of Postgres per sample, indexes included, for a simulated fleet and
// for the real CSV fixture replayed as the collector replays it: as hot rows, compacted into blocks
// (the streamer's encoding, next to Prometheus' Gorilla/XOR chunks and to plain arrays left to
// TOAST compression, the same samples each way), and as 1-minute and 1-hour rollups; and how fast
// a chunk compacts, and how fast its slices compact and merge (TELEMETRY_SLICE), the hour stored
// both ways side by side. Prometheus documents 1-2 bytes per sample.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import pgCopy from 'pg-copy-streams';
import { fmt, printTable, require, root, startPostgres } from './lib/harness.mjs';

const { createApp } = require(path.join(root, 'apps/streamer/dist/app.js'));
const { dropCompactedPartitions } = require(
  path.join(root, 'apps/streamer/dist/services/compaction.queries.js'),
);
const { decodeBlock } = require(path.join(root, 'apps/streamer/dist/codec/block-codec.js'));
const { encodeGorilla } = require(path.join(root, 'apps/streamer/dist/codec/gorilla-codec.js'));
const { rollUp, encodeRollup, HOUR_US } = require(path.join(root, 'apps/streamer/dist/codec/rollup.js'));
const { createLogger } = require(path.join(root, 'libs/service-kit/dist/index.js'));
const { QueueClient } = require(path.join(root, 'libs/queue-client/dist/index.js'));
const { DcgmSimulator } = require(path.join(root, 'libs/dcgm-simulator/dist/dcgm-simulator.js'));
const { parseExposition } = require(path.join(root, 'apps/collector/dist/parsing/exposition-parser.js'));
const { toScrapedSample } = require(path.join(root, 'apps/collector/dist/parsing/to-telemetry.js'));
const { readTelemetryCsv, ReplayClock } = require(
  path.join(root, 'apps/collector/dist/sources/csv-samples.js'),
);

const HOSTS = Number(process.env.BENCH_HOSTS ?? 32);
const INTERVAL_MS = 30_000;
const HOUR = 3_600_000;
const CSV = path.join(root, 'fixtures/csv/dcgm_metrics_20250718_134233.csv');
// An hour that closed two days ago: one chunk (TELEMETRY_CHUNK=1h, six 10-minute slices), in a day that can fold.
const hourStart = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 2 * 86_400_000 + 10 * HOUR;

function message(samples) {
  return {
    id: crypto.randomUUID(),
    payload: { source: 'bench', samples },
    attempts: 1,
    publishedAt: new Date().toISOString(),
  };
}

/** Simulated scrapes, as the collector makes them: every host every 30 s, stamped at its scrape. */
function* simulatorRounds() {
  let now = 0;
  const simulator = new DcgmSimulator({ hosts: HOSTS, gpusPerHost: 8, now: () => now });
  for (let round = 0; round < HOUR / INTERVAL_MS; round++) {
    const messages = [];
    for (let host = 1; host <= HOSTS; host++) {
      // Targets are scraped concurrently: a few ms apart, a little jitter round to round.
      now = hourStart + round * INTERVAL_MS + host * 3 + Math.floor(Math.random() * 15);
      const samples = parseExposition(simulator.render(host))
        .samples.map((s) => toScrapedSample(s, now))
        .filter(Boolean);
      for (let i = 0; i < samples.length; i += 1000) messages.push(message(samples.slice(i, i + 1000)));
    }
    yield messages;
  }
}

/**
 * The CSV replayed in a loop, a pass every 30 s in 100 ms ticks, stamped as the collector stamps
 * it (ReplayClock: the rows the export took at one time share the time the replay reached them).
 */
function* csvRounds() {
  const { rows } = readTelemetryCsv(readFileSync(CSV, 'utf8'));
  const perTick = rows.length / (INTERVAL_MS / 100);
  const clock = new ReplayClock();
  let cursor = 0;
  let carry = 0;
  for (let tick = 0; tick < HOUR / 100; tick++) {
    const due = perTick + carry;
    let count = Math.floor(due);
    carry = due - count;
    const samples = [];
    while (count-- > 0) {
      samples.push(clock.stamp(rows[cursor], hourStart + tick * 100));
      cursor = (cursor + 1) % rows.length;
    }
    if (tick % 300 === 0) yield [];
    if (samples.length > 0) yield [message(samples)];
  }
}

async function sizeOf(pool, pattern) {
  const { rows } = await pool.query(
    `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS bytes
     FROM pg_class c WHERE c.relkind = 'r' AND c.relname ~ $1`,
    [pattern],
  );
  return Number(rows[0].bytes);
}

/** A table shaped like telemetry_blocks for another encoding of the same samples. */
async function storeAlternative(pool, name, columns, rows, options = '') {
  await pool.query(`DROP TABLE IF EXISTS ${name}`);
  await pool.query(
    `CREATE TABLE ${name} (series_id bigint NOT NULL, chunk_start timestamptz NOT NULL, ${columns}) ${options}`,
  );
  await pool.query(`CREATE UNIQUE INDEX ON ${name} (series_id, chunk_start)`);
  const client = await pool.connect();
  try {
    const stream = client.query(pgCopy.from(`COPY ${name} FROM STDIN`));
    await new Promise((resolve, reject) => {
      stream.on('error', reject);
      stream.on('finish', resolve);
      for (let i = 0; i < rows.length; i += 500) stream.write(rows.slice(i, i + 500).join(''));
      stream.end();
    });
  } finally {
    client.release();
  }
  await pool.query(`VACUUM ANALYZE ${name}`);
  return sizeOf(pool, `^${name}$`);
}

/**
 * A day of 1-hour rollups as folded rows (one per series, 24 buckets), made from a day of samples
 * of the same source; returns bytes per sample summarised.
 */
async function foldedDay(pool, day) {
  const rows = [];
  let samples = 0;
  let id = 0;
  for (const { times, values } of day.values()) {
    const hours = rollUp({ times: Float64Array.from(times), values: Float64Array.from(values) }, HOUR_US, {
      edges: true,
    });
    samples += times.length;
    if (hours)
      rows.push(
        `${++id}\t${new Date(hourStart).toISOString()}\t\\\\x${encodeRollup(hours).toString('hex')}\n`,
      );
  }
  const bytes = await storeAlternative(pool, 'bench_rollups_1h_day', 'data bytea', rows);
  return bytes / samples;
}

/** A day of a simulated fleet's samples (a few hosts), per series. */
function simulatorDay(hosts = 4) {
  let now = 0;
  const simulator = new DcgmSimulator({ hosts, gpusPerHost: 8, now: () => now });
  const day = new Map();
  for (let round = 0; round < 86_400_000 / INTERVAL_MS; round++) {
    for (let host = 1; host <= hosts; host++) {
      now = hourStart - 10 * HOUR + round * INTERVAL_MS + host * 3 + Math.floor(Math.random() * 15);
      for (const s of parseExposition(simulator.render(host)).samples) {
        const key = `${s.name}${JSON.stringify(s.labels)}`;
        let series = day.get(key);
        if (!series) day.set(key, (series = { times: [], values: [] }));
        series.times.push(now * 1000);
        series.values.push(s.value);
      }
    }
  }
  return day;
}

/** A day of the CSV replayed in a loop, a pass every 30 s, per series, with csvRounds' times. */
function csvDay() {
  const { rows } = readTelemetryCsv(readFileSync(CSV, 'utf8'));
  // Row i goes out in the tick at `sentAt(i)` ms into its pass; one pass through ReplayClock gives
  // each row's time in its pass (every pass alike: a day is 7 million rows).
  const sentAt = (i) => Math.floor((i * INTERVAL_MS) / rows.length / 100) * 100;
  const clock = new ReplayClock();
  const stampedAt = rows.map((row, i) => Date.parse(clock.stamp(row, sentAt(i)).timestamp));
  const day = new Map();
  for (let pass = 0; pass < 86_400_000 / INTERVAL_MS; pass++) {
    rows.forEach((row, i) => {
      const at = hourStart - 10 * HOUR + pass * INTERVAL_MS + stampedAt[i];
      const key = `${row.gpuId}/${row.metricName}`;
      let series = day.get(key);
      if (!series) day.set(key, (series = { times: [], values: [] }));
      series.times.push(at * 1000);
      series.values.push(row.value);
    });
  }
  return day;
}

/** A streamer's app on a database of its own, hot rows in partitions of `slice` ms (null: the whole chunk). */
async function streamerOn(postgres, name, slice) {
  const url = await postgres.createDatabase(name, true);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const queue = new QueueClient({ url: 'http://127.0.0.1:9' });
  const app = createApp({
    pool,
    logger: createLogger('streamer', 'warn'),
    queue,
    config: {
      STREAMER_CONCURRENCY: 1,
      STREAMER_BATCH: 20,
      STREAMER_VISIBILITY: 60_000,
      STREAMER_WAIT: 1_000,
      TELEMETRY_RETENTION: 0,
      TELEMETRY_MAINTENANCE_INTERVAL: HOUR,
      TELEMETRY_CHUNK: HOUR,
      ...(slice === null ? {} : { TELEMETRY_SLICE: slice }),
      TELEMETRY_COMPACT_AFTER: 10_000,
      SERVICE_TOKEN: 'x'.repeat(32),
    },
  });
  const close = async () => {
    await queue.close();
    await pool.end();
    await postgres.dropDatabase(name);
  };
  return { pool, app, close };
}

/** Hot rows with their series index, and the series of each hot sample time (their key), in bytes. */
async function hotBytes(pool) {
  const { rows: counted } = await pool.query('SELECT count(*)::int AS n FROM telemetry_samples');
  await pool.query('VACUUM ANALYZE telemetry_samples');
  await pool.query('VACUUM ANALYZE telemetry_hot_times');
  const times = await sizeOf(pool, '^telemetry_hot_times$');
  return { samples: counted[0].n, times, all: (await sizeOf(pool, '^telemetry_samples_\\d')) + times };
}

async function measure(postgres, label, rounds, dayOf) {
  const name = `storage_${label.replace(/\W+/g, '_').toLowerCase()}`;
  // The hour stored twice, side by side: as the defaults keep it (the chunk's hot rows in one
  // partition until the chunk compacts) and in 10-minute slices (TELEMETRY_SLICE), compacted one by
  // one and merged once the chunk closes. Blocks and rollups are measured after the merge.
  const whole = await streamerOn(postgres, `${name}_chunk`, null);
  const sliced = await streamerOn(postgres, `${name}_slices`, 10 * 60_000);
  const { pool, app } = sliced;
  process.stderr.write(`${label}: storing an hour of samples...\n`);
  for (const messages of rounds()) {
    for (let i = 0; i < messages.length; i += 20) {
      await whole.app.ingest.handle(messages.slice(i, i + 20));
      await app.ingest.handle(messages.slice(i, i + 20));
    }
  }
  const hot = await hotBytes(whole.pool);
  const sliceHot = await hotBytes(pool);
  const samples = hot.samples;
  if (sliceHot.samples !== samples)
    throw new Error(`stored ${sliceHot.samples} of ${samples} samples in slices`);

  await postgres.quiesce();
  process.stderr.write(`${label}: compacting the chunk, ${samples.toLocaleString()} samples...\n`);
  let started = performance.now();
  const chunk = await whole.app.compactor.compactDue();
  const chunkSeconds = (performance.now() - started) / 1000;
  if (chunk.samples !== samples) throw new Error(`compacted ${chunk.samples} of ${samples} samples`);
  const blocksDigest = `SELECT md5(string_agg(b.data, ''::bytea ORDER BY s.key, b.chunk_start)) AS digest
     FROM telemetry_blocks b JOIN telemetry_series s ON s.id = b.series_id`;
  const { rows: chunkBlocks } = await whole.pool.query(blocksDigest);
  await whole.close();

  await postgres.quiesce();
  process.stderr.write(`${label}: compacting the slices...\n`);
  started = performance.now();
  const done = await app.compactor.compactDue();
  const seconds = (performance.now() - started) / 1000;
  if (done.samples !== samples) throw new Error(`compacted ${done.samples} of ${samples} samples`);
  await pool.query('VACUUM ANALYZE telemetry_blocks');
  const sliceBlocks = await sizeOf(pool, '^telemetry_blocks_\\d');
  await dropCompactedPartitions(pool);
  await postgres.quiesce();
  process.stderr.write(`${label}: merging ${done.chunks} slices...\n`);
  started = performance.now();
  if ((await app.compactor.mergeDue()) !== 1) throw new Error('the slices were not merged');
  const mergeSeconds = (performance.now() - started) / 1000;
  await pool.query('VACUUM ANALYZE telemetry_blocks, telemetry_rollups_1m, telemetry_rollups_1h');
  // On disk the day's partition also holds the space the slices' blocks left (reused by the next
  // hour's once vacuumed); the merged blocks themselves are measured in a table of their own below.
  const blocksOnDisk = await sizeOf(pool, '^telemetry_blocks_\\d');
  const { rows: data } = await pool.query('SELECT sum(length(data))::bigint AS bytes FROM telemetry_blocks');
  const minutesOnDisk = await sizeOf(pool, '^telemetry_rollups_1m_\\d');
  const { rows: minuteRows } = await pool.query('SELECT series_id, start, data FROM telemetry_rollups_1m');
  const minutes = await storeAlternative(
    pool,
    'bench_rollups_1m',
    'data bytea',
    minuteRows.map((r) => `${r.series_id}\t${r.start.toISOString()}\t\\\\x${r.data.toString('hex')}\n`),
  );

  // The same samples in the other encodings, a row per series per chunk as well.
  const { rows: stored } = await pool.query('SELECT series_id, chunk_start, data FROM telemetry_blocks');
  const gorilla = [];
  const arrays = [];
  const merged = [];
  for (const row of stored) {
    const block = decodeBlock(row.data);
    const start = row.chunk_start.toISOString();
    merged.push(`${row.series_id}\t${start}\t${block.times.length}\t\\\\x${row.data.toString('hex')}\n`);
    gorilla.push(
      `${row.series_id}\t${start}\t${block.times.length}\t\\\\x${encodeGorilla(block).toString('hex')}\n`,
    );
    const deltas = Array.from(block.times, (t, i) =>
      i === 0 ? t - row.chunk_start.getTime() * 1000 : t - block.times[i - 1],
    );
    const values = Array.from(block.values, (v) =>
      Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : String(v),
    );
    arrays.push(`${row.series_id}\t${start}\t{${deltas.join(',')}}\t{${values.join(',')}}\n`);
  }
  const blocks = await storeAlternative(pool, 'bench_blocks', 'n integer, data bytea', merged);
  const gorillaBytes = await storeAlternative(pool, 'bench_gorilla', 'n integer, data bytea', gorilla);
  await pool.query('ALTER TABLE bench_gorilla ALTER COLUMN data SET STORAGE EXTERNAL').catch(() => undefined);
  const arrayOptions = 'WITH (toast_tuple_target = 128)';
  const pglz = await storeAlternative(
    pool,
    'bench_arrays_pglz',
    'times bigint[] COMPRESSION pglz, vals double precision[] COMPRESSION pglz',
    arrays,
    arrayOptions,
  );
  const lz4 = await storeAlternative(
    pool,
    'bench_arrays_lz4',
    'times bigint[] COMPRESSION lz4, vals double precision[] COMPRESSION lz4',
    arrays,
    arrayOptions,
  ).catch(() => null);
  const folded = await foldedDay(pool, dayOf());
  const result = {
    label,
    samples,
    series: stored.length,
    hot: hot.all / samples,
    hotTimes: hot.times / samples,
    sliceHot: sliceHot.all / samples,
    sliceBlocks: sliceBlocks / samples,
    blocks: blocks / samples,
    blocksOnDisk: blocksOnDisk / samples,
    blockData: Number(data[0].bytes) / samples,
    gorilla: gorillaBytes / samples,
    pglz: pglz / samples,
    lz4: lz4 === null ? null : lz4 / samples,
    minutes: minutes / samples,
    minutesOnDisk: minutesOnDisk / samples,
    hours: folded,
    chunkRate: samples / chunkSeconds,
    rate: samples / seconds,
    mergeRate: samples / mergeSeconds,
  };
  // Merged slices are what compacting the whole chunk makes.
  const { rows: mergedBlocks } = await pool.query(blocksDigest);
  if (mergedBlocks[0].digest !== chunkBlocks[0].digest)
    throw new Error("the merged slices' blocks are not the chunk's blocks");
  await sliced.close();
  return result;
}

const postgres = await startPostgres();
const results = [];
try {
  results.push(
    await measure(postgres, `Simulator (${HOSTS * 8} GPUs x 40 metrics)`, simulatorRounds, () =>
      simulatorDay(),
    ),
  );
  results.push(await measure(postgres, 'CSV fixture replayed (247 GPUs x 10 metrics)', csvRounds, csvDay));
} finally {
  await postgres.stop();
}

printTable(
  'Storage: bytes of Postgres per sample, indexes included (an hour of samples every 30 s; Prometheus documents 1-2)',
  [
    'data',
    'samples',
    'hot rows',
    '(of which times)',
    'hot, 10m slices',
    'slice blocks',
    'blocks',
    '(on disk)',
    '(block data)',
    'Gorilla/XOR',
    'arrays pglz',
    'arrays lz4',
    'rollup 1m',
    '(1m on disk)',
    'rollup 1h',
    'compaction samples/s: chunk',
    'slices',
    'merge',
  ],
  results.map((r) => [
    r.label,
    fmt(r.samples),
    fmt(r.hot, 1),
    fmt(r.hotTimes, 2),
    fmt(r.sliceHot, 1),
    fmt(r.sliceBlocks, 2),
    fmt(r.blocks, 2),
    fmt(r.blocksOnDisk, 2),
    fmt(r.blockData, 2),
    fmt(r.gorilla, 2),
    fmt(r.pglz, 2),
    r.lz4 === null ? 'n/a' : fmt(r.lz4, 2),
    fmt(r.minutes, 2),
    fmt(r.minutesOnDisk, 2),
    fmt(r.hours, 3),
    fmt(r.chunkRate),
    fmt(r.rate),
    fmt(r.mergeRate),
  ]),
);
console.log(
  "\nhot rows: the hour kept as the defaults keep it, in its chunk's partition until it compacts (TELEMETRY_CHUNK=1h);" +
    '\nhot, 10m slices: the same samples stored side by side with TELEMETRY_SLICE=10m, a partition per slice;' +
    '\nslice blocks: one block per series per slice, as compacted before the chunk closes; blocks: merged, one per' +
    '\nseries per chunk ((on disk): the day partition after the merge, with the space the slices left, which the next' +
    "\nhour's slices reuse once vacuumed); blocks, Gorilla/XOR and arrays: one row per series per 1h chunk, same" +
    '\nsamples, same (series, chunk) index;' +
    '\nrollup 1m: one row per series per chunk (60 buckets; (1m on disk) as blocks (on disk)); rollup 1h: one folded row per series per day (24 buckets,' +
    '\nmade from a day of the same source: 32 GPUs of the simulator, or the whole CSV), per sample summarised;' +
    '\narrays lz4 is n/a where the server was built without lz4; compaction: the whole chunk at once, the six slices,' +
    "\nthen their merge (its blocks are checked to be the whole chunk's, byte for byte).",
);
process.exit(0);
