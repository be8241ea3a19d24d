import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { compactorWith, startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * A day's 1-hour rollups are folded a step of series at a time (memory holds one step, not the
 * fleet), and the folded day answers as the samples do.
 */
const HOUR = 3_600_000;
const DAY = 86_400_000;
// Four hours across a midnight three days ago, a sample every 5 minutes, five GPUs.
const base = Math.floor(Date.now() / DAY) * DAY - 2 * DAY - 2 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const GPUS = 5;
const gpu = (i: number) => `GPU-fold-${i}`;
const valueOf = (i: number, hour: number, k: number) => i * 10 + hour + (k % 3);

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: HOUR, TELEMETRY_COMPACT_AFTER: 10_000 },
  });
  const batches = [];
  for (let i = 0; i < GPUS; i++) {
    const samples = [];
    for (let hour = 0; hour < 4; hour++)
      for (let k = 0; k < 12; k++)
        samples.push(
          sample({
            gpuId: gpu(i),
            timestamp: iso(base + hour * HOUR + k * 300_000),
            value: valueOf(i, hour, k),
          }),
        );
    batches.push(message(samples));
  }
  await streamer.ingest.handle(batches);
});

afterAll(async () => {
  await streamer.close();
});

it('folds each day two series at a time into one row per series, answering as the samples do', async () => {
  const compactor = compactorWith(streamer, { chunkMs: HOUR, seriesPerStep: 2 });
  expect((await compactor.compactDue()).chunks).toBe(4);
  expect(await compactor.foldDue()).toBe(2);
  const { rows } = await streamer.database.pool.query(
    'SELECT start, count(*)::int AS n FROM telemetry_rollups_1h GROUP BY start ORDER BY start',
  );
  expect(rows.map((r) => [(r.start as Date).toISOString(), r.n])).toEqual([
    [iso(base - (base % DAY)), GPUS],
    [iso(base + 2 * HOUR), GPUS],
  ]);

  const expected = (ids: number[]) =>
    Array.from({ length: 4 }, (_, hour) => {
      const values = ids.flatMap((i) => Array.from({ length: 12 }, (_, k) => valueOf(i, hour, k)));
      return {
        start: iso(base + hour * HOUR),
        count: values.length,
        avg: values.reduce((a, b) => a + b, 0) / values.length,
        min: Math.min(...values),
        max: Math.max(...values),
      };
    });
  const range = { start_time: iso(base), end_time: iso(base + 4 * HOUR), step: '1h' };
  const fleet = await request(asService(streamer.app))
    .get('/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series')
    .query(range)
    .expect(200);
  expect(fleet.body.series).toBe(GPUS);
  expect(fleet.body.buckets).toEqual(expected([0, 1, 2, 3, 4]));
  const one = await request(asService(streamer.app))
    .get(`/v1/gpus/${gpu(3)}/metrics/DCGM_FI_DEV_GPU_UTIL/series`)
    .query(range)
    .expect(200);
  expect(one.body.buckets).toEqual(expected([3]));

  // A chunk made late in the folded second day: its series' day rows are made again from their
  // blocks, two series at a time.
  await streamer.ingest.handle([
    message(
      Array.from({ length: GPUS }, (_, i) =>
        sample({ gpuId: gpu(i), timestamp: iso(base + 5 * HOUR + 60_000), value: 100 + i }),
      ),
    ),
  ]);
  const late = compactorWith(streamer, { chunkMs: HOUR, refoldSeries: 2 });
  expect((await late.compactDue()).chunks).toBe(1);
  const after = await request(asService(streamer.app))
    .get('/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series')
    .query({ start_time: iso(base), end_time: iso(base + 6 * HOUR), step: '1h' })
    .expect(200);
  expect(after.body.buckets).toEqual([
    ...expected([0, 1, 2, 3, 4]),
    { start: iso(base + 5 * HOUR), count: GPUS, avg: 102, min: 100, max: 104 },
  ]);
  const { rows: dayRows } = await streamer.database.pool.query(
    'SELECT count(*)::int AS n FROM telemetry_rollups_1h WHERE start = $1',
    [new Date(base + 2 * HOUR)],
  );
  expect(dayRows[0].n).toBe(GPUS);
});

it('steps through sparse series ids by the series stored, not by the ids between them', async () => {
  const local = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: HOUR, TELEMETRY_COMPACT_AFTER: 10_000 },
  });
  try {
    // Three GPUs whose series ids lie ten million apart (ids drawn and never used leave such gaps).
    for (let i = 0; i < 3; i++) {
      await local.database.pool.query(`SELECT setval(pg_get_serial_sequence('telemetry_series', 'id'), $1)`, [
        (i + 1) * 10_000_000,
      ]);
      await local.ingest.handle([
        message(
          [0, 1, 2, 3].map((h) =>
            sample({ gpuId: `GPU-sparse-${i}`, timestamp: iso(base + h * HOUR), value: i }),
          ),
        ),
      ]);
    }
    const compactor = compactorWith(local, { chunkMs: HOUR, seriesPerStep: 1 });
    const started = performance.now();
    expect(await compactor.compactDue()).toMatchObject({ chunks: 4, samples: 12, blocks: 12 });
    expect(await compactor.foldDue()).toBe(2);
    expect(performance.now() - started).toBeLessThan(10_000);
    const res = await request(asService(local.app))
      .get('/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series')
      .query({ start_time: iso(base), end_time: iso(base + 4 * HOUR), step: '1h' })
      .expect(200);
    expect(res.body.buckets.map((b: { count: number; avg: number }) => [b.count, b.avg])).toEqual([
      [3, 1],
      [3, 1],
      [3, 1],
      [3, 1],
    ]);
  } finally {
    await local.close();
  }
});
