import {
  labelsFromRecord,
  PromQLEngine,
  type QueryResult,
  toPrometheusData,
  toPrometheusError,
  writeStaleMarker,
} from '@gpu-telemetry/promql';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { decodeRollup, encodeRollup } from '../codec/rollup';
import { compactChunks, memorySource, type PromSeries, storeSeries } from '../testing/prometheus-data';
import { maintainerWith, startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * max_over_time, min_over_time and present_over_time over whole hours at whole-hour steps, and
 * instant selectors at whole hours, are read from 1-hour rollups (folded days included), and
 * answer exactly what the raw samples answer: across chunk sizes (chunks of an hour, of two hours with evaluation times inside
 * them, of half an hour with partial buckets), with NaN, infinities and staleness markers in
 * some chunks, samples exactly on the hour, gaps, and the last chunks still hot.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const API = '/v1/prometheus/api/v1';
const START = Date.UTC(2024, 5, 3); // three days of samples every 30 s, from midnight
const END = START + 3 * DAY;

function dataset(): PromSeries[] {
  const out: PromSeries[] = [];
  for (let gpu = 0; gpu < 4; gpu++) {
    for (const metric of ['DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE']) {
      const timestamps: number[] = [];
      const values: number[] = [];
      const stale: number[] = [];
      for (let t = START + 7_000 * gpu; t < END; t += 30_000) {
        const k = (t - START) / 30_000;
        // gpu 3 is down from a minute before hour 30 to hour 33: a staleness marker, then nothing.
        // At hour 30 its newest sample is the marker, the last value being still in the lookback.
        if (gpu === 3 && t >= START + 30 * HOUR - 60_000 && t < START + 33 * HOUR) {
          if (timestamps.length && stale.length === 0) {
            stale.push(timestamps.length);
            timestamps.push(t);
            values.push(0);
          }
          continue;
        }
        timestamps.push(t);
        if (gpu === 1 && Math.floor(k) === 1000) values.push(NaN);
        else if (gpu === 2 && Math.floor(k) === 4000) values.push(Infinity);
        else values.push(Number((50 + 30 * Math.sin(k / (40 + gpu)) + (k % 11) * 0.25).toFixed(2)));
      }
      // A sample exactly on an hour that is the highest of its window.
      if (gpu === 0) {
        const at = START + 20 * HOUR;
        const i = timestamps.indexOf(at);
        values[i] = 1000;
      }
      const v = new Float64Array(values);
      for (const i of stale) writeStaleMarker(v, i);
      out.push({
        labels: labelsFromRecord({
          __name__: metric,
          UUID: `GPU-${gpu}`,
          gpu: String(gpu),
          Hostname: 'host-0',
        }),
        timestamps,
        values: v,
      });
    }
  }
  return out;
}

const data = dataset();
const reference = new PromQLEngine({ source: memorySource(data) });
const apps: { name: string; app: TestApp }[] = [];

async function storedWith(chunkMs: number, hotChunks: number): Promise<TestApp> {
  const app = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: chunkMs } });
  const chunks = await storeSeries({ ingest: app.ingest, pool: app.database.pool }, data);
  await compactChunks(app.compactor, chunks.slice(0, chunks.length - hotChunks));
  // Fold the first two days' 1-hour rollups into one row per series per day.
  expect(await app.compactor.foldDay(START)).toBe(true);
  expect(await app.compactor.foldDay(START + DAY)).toBe(true);
  return app;
}

beforeAll(async () => {
  apps.push({ name: 'one-hour chunks', app: await storedWith(HOUR, 5) });
  apps.push({ name: 'two-hour chunks', app: await storedWith(2 * HOUR, 2) });
  apps.push({ name: 'half-hour chunks', app: await storedWith(HOUR / 2, 7) });
}, 180_000);

afterAll(async () => {
  for (const { app } of apps) await app.close();
});

async function expected(run: () => Promise<QueryResult>): Promise<object> {
  try {
    return { status: 'success', data: toPrometheusData(await run()) };
  } catch (error) {
    return { status: 'error', errorType: toPrometheusError(error).body.errorType };
  }
}

async function rollupSamples(app: TestApp): Promise<number> {
  const metric = await app.streamerMetrics.promqlSamples.get();
  return metric.values.find((v) => v.labels['origin'] === 'rollups')?.value ?? 0;
}

const QUERIES = [
  'max_over_time(DCGM_FI_DEV_GPU_TEMP[1h])',
  'min_over_time(DCGM_FI_DEV_GPU_TEMP[3h])',
  'max_over_time(DCGM_FI_DEV_POWER_USAGE[1d])',
  'min_over_time(DCGM_FI_DEV_POWER_USAGE{gpu=~"[12]"}[2h])',
  'present_over_time(DCGM_FI_DEV_GPU_TEMP{gpu="3"}[1h])',
  'sum(max_over_time(DCGM_FI_DEV_GPU_TEMP[6h]) - min_over_time(DCGM_FI_DEV_GPU_TEMP[6h]))',
  // Instant selectors: the newest sample at each hour, staleness included.
  'DCGM_FI_DEV_GPU_TEMP',
  'avg(DCGM_FI_DEV_POWER_USAGE) by (Hostname)',
  'timestamp(DCGM_FI_DEV_GPU_TEMP{gpu=~"[03]"})',
  'DCGM_FI_DEV_POWER_USAGE offset 2h',
  'max_over_time(DCGM_FI_DEV_GPU_TEMP[1d:1h])',
];
const RANGES: [string, number, number, number][] = [
  ['three days at 1h', START + HOUR, END, HOUR],
  ['two days at 2h', START + 2 * HOUR, START + 2 * DAY, 2 * HOUR],
  ['the hot end at 1h', END - 8 * HOUR, END + HOUR, HOUR],
];

describe.each([['one-hour chunks'], ['two-hour chunks'], ['half-hour chunks']])('with %s', (name) => {
  const app = () => (apps.find((a) => a.name === name) as { app: TestApp }).app;

  it.each(QUERIES)('answers %s from rollups as from the raw samples', async (query) => {
    const before = await rollupSamples(app());
    for (const [, start, end, step] of RANGES) {
      const res = await request(asService(app().app))
        .get(`${API}/query_range`)
        .query({ query, start: String(start / 1000), end: String(end / 1000), step: String(step / 1000) });
      expect(res.body).toEqual(await expected(() => reference.rangeQuery(query, start, end, step)));
    }
    for (const t of [START + 20 * HOUR, START + 31 * HOUR, END - 3 * HOUR]) {
      const res = await request(asService(app().app))
        .get(`${API}/query`)
        .query({ query, time: String(t / 1000) });
      expect(res.body).toEqual(await expected(() => reference.instantQuery(query, t)));
    }
    expect(await rollupSamples(app())).toBeGreaterThan(before);
  });

  it('reads raw samples where windows or times are not whole hours, with the same answers', async () => {
    const before = await rollupSamples(app());
    for (const [query, step] of [
      ['max_over_time(DCGM_FI_DEV_GPU_TEMP[90m])', HOUR],
      ['max_over_time(DCGM_FI_DEV_GPU_TEMP[1h])', 30 * 60_000],
      ['avg_over_time(DCGM_FI_DEV_GPU_TEMP[1h])', HOUR],
      ['DCGM_FI_DEV_GPU_TEMP', 30 * 60_000],
      ['DCGM_FI_DEV_GPU_TEMP offset 1m', HOUR],
    ] as const) {
      const [start, end] = [START + DAY, START + DAY + 6 * HOUR];
      const res = await request(asService(app().app))
        .get(`${API}/query_range`)
        .query({ query, start: String(start / 1000), end: String(end / 1000), step: String(step / 1000) });
      expect(res.body).toEqual(await expected(() => reference.rangeQuery(query, start, end, step)));
    }
    expect(await rollupSamples(app())).toBe(before);
  });
});

describe('1-hour rollups written before they had edges', () => {
  it('leave instant selectors to the raw samples, with the same answers', async () => {
    const { app } = apps.find((a) => a.name === 'one-hour chunks') as { app: TestApp };
    const pool = app.database.pool;
    const { rows } = await pool.query<{ series_id: string; start: Date; data: Buffer }>(
      'SELECT series_id, start, data FROM telemetry_rollups_1h',
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      const { edges, ...older } = decodeRollup(row.data);
      expect(edges).toBeDefined();
      await pool.query('UPDATE telemetry_rollups_1h SET data = $3 WHERE series_id = $1 AND start = $2', [
        row.series_id,
        row.start,
        encodeRollup(older),
      ]);
    }
    const before = await rollupSamples(app);
    const [query, start, end] = ['DCGM_FI_DEV_GPU_TEMP', START + HOUR, END];
    const res = await request(asService(app.app))
      .get(`${API}/query_range`)
      .query({ query, start: String(start / 1000), end: String(end / 1000), step: String(HOUR / 1000) });
    expect(res.body).toEqual(await expected(() => reference.rangeQuery(query, start, end, HOUR)));
    expect(await rollupSamples(app)).toBe(before);
  });
});

describe('chunks kept longer than their 1-hour rollups', () => {
  it('are read raw once the rollups of their day are dropped, with the same answers', async () => {
    const { app } = apps.find((a) => a.name === 'two-hour chunks') as { app: TestApp };
    // Raw samples kept for ever (TELEMETRY_RETENTION 0), 1-hour rollups of the first day dropped.
    const maintainer = maintainerWith(app, { retentionMs: 0, retention1hMs: Date.now() - (START + DAY) });
    await maintainer.maintain();
    const left = await app.database.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM telemetry_rollups_1h WHERE start < $1',
      [new Date(START + DAY)],
    );
    expect(left.rows[0]?.n).toBe(0);
    for (const query of ['DCGM_FI_DEV_GPU_TEMP', 'max_over_time(DCGM_FI_DEV_POWER_USAGE[1h])']) {
      const [start, end] = [START + HOUR, END];
      const res = await request(asService(app.app))
        .get(`${API}/query_range`)
        .query({ query, start: String(start / 1000), end: String(end / 1000), step: String(HOUR / 1000) });
      expect(res.body).toEqual(await expected(() => reference.rangeQuery(query, start, end, HOUR)));
    }
  });
});
