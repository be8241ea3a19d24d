// npm run bench:ingest: rows/s from publish to stored through queue + streamer, against a plain
// COPY of the same rows into the same table (the ceiling), in one run, the two alternated over
// BENCH_PASSES passes so that each ratio is of figures taken seconds apart; the same messages delivered
// again (every sample already stored); then the whole system under a 10,000-GPU fleet, with scrape-to-stored p99.
import path from 'node:path';
import pg from 'pg';
import {
  cpuMeter,
  fmt,
  freePort,
  printTable,
  require,
  root,
  sleep,
  startPostgres,
  SERVICE_TOKEN,
  startService,
  serviceHeaders,
} from './lib/harness.mjs';

/** The cumulative buckets of a Prometheus histogram in exposition text: [le, count][]. */
function histogramBuckets(text, name) {
  return [...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))].map(
    (m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])],
  );
}

/** A quantile of what a histogram counted between two readings, interpolated within its bucket. */
function histogramQuantile(before, after, q) {
  const buckets = after.map(([le, count], i) => [le, count - (before[i]?.[1] ?? 0)]);
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total === 0) return NaN;
  let [prevLe, prevCount] = [0, 0];
  for (const [le, count] of buckets) {
    if (count >= q * total) {
      if (le === Infinity) return prevLe;
      return prevLe + ((le - prevLe) * (q * total - prevCount)) / Math.max(1, count - prevCount);
    }
    [prevLe, prevCount] = [le, count];
  }
  return prevLe;
}

const { QueueClient } = require(path.join(root, 'libs/queue-client/dist/index.js'));
const { DcgmSimulator } = require(path.join(root, 'libs/dcgm-simulator/dist/dcgm-simulator.js'));
const { parseExposition } = require(path.join(root, 'apps/collector/dist/parsing/exposition-parser.js'));
const { toScrapedSample } = require(path.join(root, 'apps/collector/dist/parsing/to-telemetry.js'));
const { buildMessages } = require(path.join(root, 'apps/collector/dist/publishing/message-builder.js'));
const { hotCopyChunks, HOT_COPY_COLUMNS, resolveSeries, ensureChunks } = require(
  path.join(root, 'apps/streamer/dist/services/telemetry-write.queries.js'),
);

const { copyIn } = require(path.join(root, 'libs/db/dist/index.js'));
const { microsOf } = require(path.join(root, 'apps/streamer/dist/services/sample-time.js'));
const { SeriesCache } = require(path.join(root, 'apps/streamer/dist/services/series-cache.js'));

const ROWS = Number(process.env.BENCH_ROWS ?? 600_000);
const FLEET_GPUS = Number(process.env.BENCH_FLEET_GPUS ?? 10_000);
const FLEET_ROUNDS = Number(process.env.BENCH_FLEET_ROUNDS ?? 3);
const INTERVAL_S = 30;
const PUBLISHERS = Number(process.env.BENCH_PUBLISHERS ?? 4);
/** Passes of the ceiling and the pipeline, alternated; the table keeps the median of each. */
const PASSES = Math.max(1, Number(process.env.BENCH_PASSES ?? 3));

// The same samples for every contender: simulated scrapes of 64 hosts every 30 s from `t`, `rows`
// samples or `rounds` rounds of scrapes, whichever comes first.
function makeSamples(simulator, t, rows, rounds = Infinity) {
  const samples = [];
  const messages = [];
  for (let round = 0; samples.length < rows && round < rounds; round++) {
    for (let host = 1; host <= 64 && samples.length < rows; host++) {
      const batch = parseExposition(simulator.render(host))
        .samples.map((s) => toScrapedSample(s, t))
        .filter(Boolean);
      samples.push(...batch);
      messages.push(...buildMessages(`bench-host-${host}`, t, batch));
    }
    t += 30_000;
  }
  return { samples: samples.slice(0, rows), messages, t };
}

/** Where the server's write-ahead log is now, in bytes: its growth is what a path writes to it. */
async function walBytes(pool) {
  return Number(
    (await pool.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS b`)).rows[0].b,
  );
}

async function count(pool) {
  return (await pool.query('SELECT count(*)::int AS n FROM telemetry_samples')).rows[0].n;
}

/**
 * The ceiling: the same narrow rows (series already stored) by one plain COPY into the same table,
 * in the binary format the streamer sends. Returns `once`, which empties the table and times one
 * COPY: the passes alternate it with the pipeline's, so that each ratio divides two figures taken
 * within seconds of each other, under the same machine weather.
 */
async function copyCeiling(url, samples) {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  const keys = new Map();
  for (const s of samples) {
    const key = SeriesCache.keyOf(s);
    if (!keys.has(key)) keys.set(key, s);
  }
  const { ids } = await resolveSeries(pool, [...keys.values()]);
  const idOf = new Map([...keys.keys()].map((key, i) => [key, ids[i]]));
  const times = samples.map((s) => Date.parse(s.timestamp));
  await ensureChunks(pool, times, 3_600_000);
  const rows = {
    seriesIds: samples.map((s) => idOf.get(SeriesCache.keyOf(s))),
    us: samples.map((s) => microsOf(s.timestamp)),
    values: samples.map((s) => (typeof s.value === 'number' ? s.value : NaN)),
  };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  return {
    async once() {
      await pool.query('TRUNCATE telemetry_samples');
      const wal = await walBytes(pool);
      const used = cpuMeter();
      const started = performance.now();
      await copyIn(client, HOT_COPY_COLUMNS, hotCopyChunks(rows), 'binary');
      const seconds = (performance.now() - started) / 1000;
      return { rate: samples.length / seconds, cpu: used(), wal: (await walBytes(pool)) - wal };
    },
    async close() {
      await client.end();
      await pool.end();
    },
  };
}

/** The middle of three or more figures, by `of`. */
function median(items, of) {
  return [...items].sort((a, b) => of(a) - of(b))[Math.floor(items.length / 2)];
}

/**
 * Publishes the messages (again when `again`: the queue, which forgets acked ids, delivers them
 * and the streamer finds every sample stored); returns rows/s until the streamer has
 * them all, and the CPU each process spent meanwhile. Done is read from the queue's counters (every
 * message acked, which the streamer does after its commit), not by counting rows while they go in:
 * a count(*) every 50 ms would be a scan of the table competing with what it measures. The rows
 * are counted once at the end.
 */
async function throughPipeline(queue, pool, messages, expectedRows, again, pids, streamerUrl) {
  const batches = async () => {
    const text = await fetch(`${streamerUrl}/metrics`, { headers: serviceHeaders }).then((r) => r.text());
    return [...text.matchAll(/^streamer_batches_total\{[^}]*\} (\S+)$/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  };
  const batchesBefore = await batches();
  const startRows = await count(pool);
  const wal = await walBytes(pool);
  const used = cpuMeter(pids);
  const started = performance.now();
  let published = false;
  // Collectors publish side by side: PUBLISHERS calls in flight, 16 messages each.
  let next = 0;
  const publisher = async () => {
    while (next < messages.length) {
      const chunk = messages.slice(next, (next += 16)).map((m) => m.json);
      await queue.publishSerialized('telemetry', chunk);
    }
  };
  const publishing = Promise.all(Array.from({ length: PUBLISHERS }, publisher)).then(() => {
    published = true;
  });
  for (;;) {
    await sleep(50);
    const stats = await queue.topic('telemetry');
    if (published && stats.ready + stats.inFlight + stats.delayed === 0) break;
  }
  await publishing;
  const seconds = (performance.now() - started) / 1000;
  const cpu = used();
  const walWritten = (await walBytes(pool)) - wal;
  const stored = (await count(pool)) - startRows;
  if (stored !== (again ? 0 : expectedRows))
    throw new Error(`stored ${stored} rows, expected ${again ? 0 : expectedRows}`);
  const perBatch = messages.length / ((await batches()) - batchesBefore);
  return { rate: expectedRows / seconds, cpu, wal: walWritten, perBatch };
}

const postgres = await startPostgres();
const services = [];
try {
  process.stderr.write(`preparing ${ROWS.toLocaleString()} samples...\n`);
  // One round of scrapes meets every series (stored once, for good); the measured samples are the
  // rounds after it, as in a fleet that has been running: the ceiling's series are stored too.
  const simulator = new DcgmSimulator({ hosts: 64, gpusPerHost: 8 });
  const firstRound = makeSamples(simulator, Date.now() - 3_600_000, Infinity, 1);
  const { samples, messages } = makeSamples(simulator, firstRound.t, ROWS);
  const copyUrl = await postgres.createDatabase('ingest_copy', true);
  const pipeUrl = await postgres.createDatabase('ingest_pipeline', true);

  const ceiling = await copyCeiling(copyUrl, samples);

  const queuePort = freePort();
  const queue = await startService('queue', {
    DATABASE_URL: pipeUrl,
    PORT: String(queuePort),
    HOST: '127.0.0.1',
  });
  services.push(queue);
  const streamer = await startService('streamer', {
    DATABASE_URL: pipeUrl,
    PORT: String(freePort()),
    HOST: '127.0.0.1',
    QUEUE_URL: queue.url,
    // The service's defaults (STREAMER_CONCURRENCY 4, STREAMER_BATCH 20) unless asked otherwise.
    ...(process.env.BENCH_STREAMER_CONCURRENCY
      ? { STREAMER_CONCURRENCY: process.env.BENCH_STREAMER_CONCURRENCY }
      : {}),
    TELEMETRY_RETENTION: '0',
  });
  services.push(streamer);
  const client = new QueueClient({ url: queue.url, connections: 4, token: SERVICE_TOKEN });
  const pool = new pg.Pool({ connectionString: pipeUrl, max: 2 });
  const rows = messages.reduce((sum, m) => sum + m.samples, 0);
  const pids = { queue: queue.pid, streamer: streamer.pid };
  process.stderr.write('queue + streamer, the first round: every series new...\n');
  const newSeries = firstRound.messages.reduce((sum, m) => sum + m.samples, 0);
  const fresh = await throughPipeline(
    client,
    pool,
    firstRound.messages,
    newSeries,
    false,
    pids,
    streamer.url,
  );
  // The rounds after it, PASSES times, each right after a COPY of the same rows (the pipeline's
  // samples emptied before each pass, as the ceiling's table is before each COPY).
  const passes = [];
  for (let pass = 1; pass <= PASSES; pass++) {
    process.stderr.write(`pass ${pass} of ${PASSES}: COPY ceiling, then queue + streamer...\n`);
    const copied = await ceiling.once();
    await pool.query('TRUNCATE telemetry_samples, telemetry_hot_times');
    const piped = await throughPipeline(client, pool, messages, rows, false, pids, streamer.url);
    passes.push({ copied, piped, ratio: piped.rate / copied.rate });
  }
  await ceiling.close();
  const copy = median(passes, (p) => p.copied.rate).copied;
  const first = median(passes, (p) => p.piped.rate).piped;
  const ratio = median(passes, (p) => p.ratio).ratio;
  process.stderr.write('queue + streamer, redelivered...\n');
  const dup = await throughPipeline(client, pool, messages, rows, true, pids, streamer.url);
  if ((await count(pool)) !== rows) throw new Error('redelivery changed the row count');

  printTable(
    `Ingest: ${rows.toLocaleString()} samples (simulated dcgm-exporter scrapes), ~${Math.round(rows / messages.length)} per message`,
    [
      'path',
      'rows/s',
      'ratio to COPY',
      'WAL B/row',
      'CPU µs/row: postgres',
      'queue',
      'streamer',
      'publisher',
      'messages a batch',
    ],
    [
      [
        `COPY into telemetry_samples (ceiling, median of ${PASSES})`,
        fmt(copy.rate),
        '1.00',
        fmt(copy.wal / samples.length, 0),
        fmt(copy.cpu.postgres / samples.length, 1),
        '-',
        '-',
        '-',
        '-',
      ],
      ...[
        [`publish -> queue -> streamer -> stored (median of ${PASSES})`, first, rows],
        ['the same messages again (already stored)', dup, rows],
        [`first round: ${fmt(newSeries)} series new (not in ratio)`, fresh, newSeries],
      ].map(([label, r, n]) => [
        label,
        fmt(r.rate),
        r === first ? fmt(ratio, 2) : n === rows ? fmt(r.rate / copy.rate, 2) : '-',
        fmt(r.wal / n, 0),
        ...['postgres', 'queue', 'streamer', 'self'].map((k) => fmt(r.cpu[k] / n, 1)),
        fmt(r.perBatch, 1),
      ]),
    ],
  );
  process.stdout.write(
    `Passes (COPY, then the pipeline, alternated; the table keeps the medians, its ratio the median pass's):\n` +
      passes
        .map(
          (p, i) =>
            `  ${i + 1}: COPY ${fmt(p.copied.rate)} rows/s, pipeline ${fmt(p.piped.rate)} rows/s, ratio ${fmt(p.ratio, 2)}\n`,
        )
        .join(''),
  );
  await client.close();

  // --- the whole system under a fleet (BENCH_FLEET_ROUNDS=0 skips it) ------------------------------
  if (FLEET_ROUNDS > 0) {
    const hosts = Math.ceil(FLEET_GPUS / 8);
    const simPort = freePort();
    process.stderr.write(
      `fleet: ${hosts} hosts x 8 GPUs x 40 metrics every ${INTERVAL_S}s for ${FLEET_ROUNDS} rounds...\n`,
    );
    const simulator = await startService(
      'simulator',
      { SIM_PORT: String(simPort), SIM_HOST: '127.0.0.1', SIM_HOSTS: String(hosts), SIM_GPUS_PER_HOST: '8' },
      'libs/dcgm-simulator/dist/main.js',
    );
    services.push(simulator);
    await pool.query('TRUNCATE telemetry_samples');
    const metrics = () => fetch(`${streamer.url}/metrics`, { headers: serviceHeaders }).then((r) => r.text());
    const ageBefore = histogramBuckets(await metrics(), 'streamer_sample_age_seconds');
    const collector = await startService('collector', {
      DATABASE_URL: pipeUrl,
      PORT: String(freePort()),
      HOST: '127.0.0.1',
      QUEUE_URL: queue.url,
      COLLECT_TARGETS: `http://127.0.0.1:${simPort}/hosts/{1..${hosts}}/metrics`,
      COLLECT_INTERVAL: `${INTERVAL_S}s`,
      COLLECT_CONCURRENCY: '16',
    });
    services.push(collector);
    // The first round meets 400,000 new series; the rounds after it show the steady state, measured
    // from when the first round is stored (a fixed wait would count its stragglers in the rounds after).
    const expectedPerRound = hosts * 8 * 40;
    const waitFrom = performance.now();
    for (;;) {
      await sleep(1000);
      if ((await count(pool)) >= expectedPerRound || performance.now() - waitFrom > 4 * INTERVAL_S * 1000)
        break;
    }
    const ageFirst = histogramBuckets(await metrics(), 'streamer_sample_age_seconds');
    await sleep(((FLEET_ROUNDS - 1) * INTERVAL_S + 4) * 1000);
    const stored = await count(pool);
    const { rows: series } = await pool.query(`SELECT count(*)::int AS n FROM telemetry_series`);
    // Scrape-to-stored times come from the streamer's own histogram (no per-sample ingest time is stored).
    const ageAfter = histogramBuckets(await metrics(), 'streamer_sample_age_seconds');
    const quantiles = (from, to) => [
      fmt(histogramQuantile(from, to, 0.5), 2),
      fmt(histogramQuantile(from, to, 0.99), 2),
    ];
    printTable(
      `Whole system: ${(hosts * 8).toLocaleString()} simulated GPUs x 40 metrics every ${INTERVAL_S}s (${fmt(expectedPerRound / INTERVAL_S)} samples/s), ${FLEET_ROUNDS} rounds`,
      [
        'samples stored',
        'series',
        'rounds (of ' + fmt(expectedPerRound) + ')',
        'scrape->stored p50 s',
        'p99 s',
        'once the first round is stored: p50 s',
        'p99 s',
      ],
      [
        [
          fmt(stored),
          fmt(series[0].n),
          fmt(stored / expectedPerRound, 2),
          ...quantiles(ageBefore, ageAfter),
          ...(FLEET_ROUNDS > 1 ? quantiles(ageFirst, ageAfter) : ['-', '-']),
        ],
      ],
    );
  }
  await pool.end();
} finally {
  for (const service of services.reverse()) await service.stop();
  process.on('uncaughtException', () => undefined);
  await postgres.stop();
}
process.exit(0);
