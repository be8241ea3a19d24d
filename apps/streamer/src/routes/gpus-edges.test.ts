import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { frameMessage, message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;
const MINUTE = 60_000;
const HOUR = 3_600_000;
// Whole minutes, half an hour ago: old enough to compact (TELEMETRY_COMPACT_AFTER 10 s).
const base = Math.floor((Date.now() - 30 * MINUTE) / MINUTE) * MINUTE;
const iso = (ms: number) => new Date(ms).toISOString();
/** The whole second `ms` falls in, as RFC 3339 without its fraction, for a test's own fraction. */
const second = (ms: number) => iso(ms).replace(/\.\d+Z$/, '');
const api = () => request(asService(streamer.app));
const dense = base - 3 * HOUR;

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 },
  });
  const samples = [];
  for (let s = 0; s < 120; s += 10)
    samples.push(sample({ gpuId: 'GPU-A', metricName: 'UTIL', timestamp: iso(base + s * 1000), value: s }));
  // The largest finite values, two in one minute: their sum is past the largest double.
  for (const s of [1, 2])
    samples.push(
      sample({ gpuId: 'GPU-O', metricName: 'BIG', timestamp: iso(base + s * 1000), value: 1.7e308 }),
    );
  // A sample 0.2 ms into a second, and one 0.7 ms into the next.
  samples.push(
    sample({ gpuId: 'GPU-S', metricName: 'SUB', timestamp: `${second(base + 5000)}.000200Z`, value: 7 }),
  );
  samples.push(
    sample({ gpuId: 'GPU-S', metricName: 'SUB', timestamp: `${second(base + 6000)}.000700Z`, value: 9 }),
  );
  expect(await streamer.ingest.handle([message(samples)])).toEqual({ failed: [] });
  // One a second, at .6 s, for 10,000 seconds.
  const each = [];
  for (let s = 0; s <= 10_000; s++)
    each.push(
      sample({ gpuId: 'GPU-D', metricName: 'DENSE', timestamp: iso(dense + s * 1000 + 600), value: s }),
    );
  const messages = [];
  for (let i = 0; i < each.length; i += 1000) messages.push(message(each.slice(i, i + 1000)));
  expect(await streamer.ingest.handle(messages)).toEqual({ failed: [] });
}, 120_000);

afterAll(async () => {
  await streamer.close();
});

describe('GET /v1/gpus/:gpuId/telemetry', () => {
  it('answers a cursor naming a series id past any stored one with a 400 naming the cursor', async () => {
    const cursor = Buffer.from(JSON.stringify([base * 1000, 3_000_000_000])).toString('base64url');
    const res = await api()
      .get('/v1/gpus/GPU-A/telemetry')
      .query({ start_time: iso(base - MINUTE), end_time: iso(base + 10 * MINUTE), cursor })
      .expect(400);
    expect(res.body.errors).toEqual([{ field: 'cursor', message: expect.any(String) }]);
  });

  it("refuses another GPU's or metric's cursor by name, where it would skip samples silently", async () => {
    const range = { start_time: iso(base - MINUTE), end_time: iso(base + 10 * MINUTE) };
    const first = await api()
      .get('/v1/gpus/GPU-A/telemetry')
      .query({ ...range, limit: 2 })
      .expect(200);
    const cursor = first.body.nextCursor as string;
    for (const [path, metric] of [
      ['/v1/gpus/GPU-S/telemetry', undefined],
      ['/v1/gpus/GPU-A/telemetry', 'UTIL'],
    ] as const) {
      const res = await api()
        .get(path)
        .query({ ...range, cursor, ...(metric ? { metric } : {}) })
        .expect(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body.errors).toEqual([
        {
          field: 'cursor',
          message: 'is a cursor of another GPU or metric: ask its pages with the same ones',
        },
      ]);
    }
    const next = await api()
      .get('/v1/gpus/GPU-A/telemetry')
      .query({ ...range, cursor, limit: 2 })
      .expect(200);
    expect(next.body.samples.map((s: { value: number }) => s.value)).toEqual([20, 30]);
  });

  it('cuts a page of samples with long label sets at 16 Mi characters, and pages through every one once', async () => {
    // 64 labels of 4,000 characters: ~260 kB a sample as the API shows it (its labels repeated).
    const labels = Object.fromEntries(
      Array.from({ length: 64 }, (_, i) => [`l${i}`, String(i).repeat(4_000).slice(0, 4_000)]),
    );
    const samples = Array.from({ length: 80 }, (_, s) =>
      sample({ gpuId: 'GPU-L', metricName: 'WIDE', timestamp: iso(base + s * 1000), value: s, labels }),
    );
    expect(await streamer.ingest.handle([frameMessage(samples)])).toEqual({ failed: [] });
    const values: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { text: string; body: { samples: { value: number }[]; nextCursor: string | null } } =
        await api()
          .get('/v1/gpus/GPU-L/telemetry')
          .query({
            start_time: iso(base - MINUTE),
            end_time: iso(base + 10 * MINUTE),
            limit: 1000,
            ...(cursor ? { cursor } : {}),
          })
          .expect(200);
      expect(res.text.length).toBeLessThanOrEqual(16 * 1024 * 1024 + 1024);
      values.push(...res.body.samples.map((s: { value: number }) => s.value));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBeGreaterThan(1);
    expect(values).toEqual(Array.from({ length: 80 }, (_, s) => s));
  }, 60_000);
});

describe('GET /v1/gpus/:gpuId/metrics/:metric/series', () => {
  it('answers at most 10,000 buckets: a range of 10,000 steps off the step grid touches 10,001', async () => {
    const start = dense + 500;
    const off = await api()
      .get('/v1/gpus/GPU-D/metrics/DENSE/series')
      .query({ start_time: iso(start), end_time: iso(start + 10_000_000), step: '1s' })
      .expect(400);
    expect(off.body.errors).toEqual([{ field: 'step', message: expect.stringContaining('10000 buckets') }]);
    const on = await api()
      .get('/v1/gpus/GPU-D/metrics/DENSE/series')
      .query({ start_time: iso(dense), end_time: iso(dense + 10_000_000), step: '1s' })
      .expect(200);
    expect(on.body.buckets).toHaveLength(10_000);
  });

  it('keeps the microseconds of its bounds: start inclusive, end exclusive, as /telemetry does', async () => {
    const query = {
      start_time: `${second(base + 5000)}.0005Z`,
      end_time: `${second(base + 6000)}.0009Z`,
      step: '1s',
    };
    const telemetry = await api()
      .get('/v1/gpus/GPU-S/telemetry')
      .query({ start_time: query.start_time, end_time: query.end_time })
      .expect(200);
    expect(telemetry.body.samples.map((s: { value: number }) => s.value)).toEqual([9]);
    const series = await api().get('/v1/gpus/GPU-S/metrics/SUB/series').query(query).expect(200);
    expect(series.body.buckets).toEqual([{ start: iso(base + 6000), count: 1, avg: 9, min: 9, max: 9 }]);
    const narrow = await api()
      .get('/v1/gpus/GPU-S/metrics/SUB/series')
      .query({ ...query, start_time: `${second(base + 6000)}.0008Z` })
      .expect(200);
    expect(narrow.body.buckets).toEqual([]);
  });
});

describe('aggregates of the largest finite values', () => {
  const query = { start_time: iso(base - MINUTE), end_time: iso(base + 10 * MINUTE), step: '1m' };
  const bucket = { start: iso(base), count: 2, avg: 1.7e308, min: 1.7e308, max: 1.7e308 };

  it('answers their mean, not a client error, from hot rows of one GPU and of the fleet', async () => {
    const gpu = await api().get('/v1/gpus/GPU-O/metrics/BIG/series').query(query).expect(200);
    expect(gpu.body.buckets).toEqual([bucket]);
    const fleet = await api().get('/v1/gpus/metrics/BIG/series').query(query).expect(200);
    expect(fleet.body.buckets).toEqual([bucket]);
  });
});

describe('after compaction', () => {
  beforeAll(async () => {
    await streamer.compactor.compactDue();
    const { rows } = await streamer.database.pool.query(
      `SELECT count(*)::int AS n FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
       WHERE s.gpu_id IN ('GPU-O', 'GPU-S')`,
    );
    expect(rows[0].n).toBe(0); // every sample read below is compacted
  }, 120_000);

  it('answers the same mean of the largest finite values from rollups and from blocks', async () => {
    const query = { start_time: iso(base - MINUTE), end_time: iso(base + 10 * MINUTE) };
    // A minute's step is answered from the 1-minute rollups, five seconds' from the blocks.
    for (const step of ['1m', '5s']) {
      const res = await api()
        .get('/v1/gpus/GPU-O/metrics/BIG/series')
        .query({ ...query, step })
        .expect(200);
      expect(res.body.buckets).toEqual([
        { start: iso(base), count: 2, avg: 1.7e308, min: 1.7e308, max: 1.7e308 },
      ]);
    }
  });

  it('keeps the microseconds of its bounds over compacted samples too', async () => {
    const res = await api()
      .get('/v1/gpus/GPU-S/metrics/SUB/series')
      .query({
        start_time: `${second(base + 5000)}.0005Z`,
        end_time: `${second(base + 6000)}.0009Z`,
        step: '1s',
      })
      .expect(200);
    expect(res.body.buckets).toEqual([{ start: iso(base + 6000), count: 1, avg: 9, min: 9, max: 9 }]);
    // A step of whole minutes reads 1-minute rollups between the minutes, raw samples at its edges.
    const minutes = await api()
      .get('/v1/gpus/GPU-S/metrics/SUB/series')
      .query({ start_time: `${second(base + 5000)}.0005Z`, end_time: iso(base + 2 * MINUTE), step: '1m' })
      .expect(200);
    expect(minutes.body.buckets).toEqual([{ start: iso(base), count: 1, avg: 9, min: 9, max: 9 }]);
  });
});
