import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;
const GPU_A = 'GPU-5fd4f087-86f3-7a43-b711-4771313afc50';
const GPU_B = 'GPU-bc7a12ab-4998-fdc5-0785-2678a929a142';
const base = Date.parse('2026-11-20T10:00:00.000Z');
const at = (minutes: number) => new Date(base + minutes * 60_000).toISOString();

beforeAll(async () => {
  streamer = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
  // GPU A: utilisation and temperature every minute for two hours; GPU B: one sample.
  const samples = [];
  for (let m = 0; m < 120; m++) {
    samples.push(
      sample({ gpuId: GPU_A, timestamp: at(m), metricName: 'DCGM_FI_DEV_GPU_UTIL', value: m % 100 }),
    );
    samples.push(
      sample({ gpuId: GPU_A, timestamp: at(m), metricName: 'DCGM_FI_DEV_GPU_TEMP', value: 40 + (m % 10) }),
    );
  }
  samples.push(
    sample({
      gpuId: GPU_A,
      timestamp: at(5),
      metricName: 'DCGM_FI_DEV_GPU_UTIL',
      value: 'NaN',
      labels: { GPU_I_ID: '3' },
    }),
  );
  const batches = [];
  for (let i = 0; i < samples.length; i += 100) batches.push(message(samples.slice(i, i + 100)));
  await streamer.ingest.handle(batches);
  await streamer.ingest.handle([
    message([sample({ gpuId: GPU_B, gpuIndex: 1, hostname: 'node-2', timestamp: at(0) })]),
  ]);
});

afterAll(async () => {
  await streamer.close();
});

const api = () => request(asService(streamer.app));

describe('GET /v1/gpus', () => {
  it('lists every GPU seen with its index, model, host, first and last seen and metrics', async () => {
    const res = await api().get('/v1/gpus').expect(200);
    expect(res.body).toEqual({
      gpus: [
        {
          id: GPU_A,
          index: 0,
          device: 'nvidia0',
          modelName: 'NVIDIA H100 80GB HBM3',
          hostname: 'node-1',
          firstSeen: at(0),
          lastSeen: at(119),
          metrics: ['DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_GPU_UTIL'],
        },
        expect.objectContaining({
          id: GPU_B,
          index: 1,
          hostname: 'node-2',
          metrics: ['DCGM_FI_DEV_GPU_UTIL'],
        }),
      ],
      nextCursor: null,
    });
  });

  it('pages and filters by hostname', async () => {
    const first = await api().get('/v1/gpus?limit=1').expect(200);
    expect(first.body.gpus.map((g: { id: string }) => g.id)).toEqual([GPU_A]);
    const second = await api().get(`/v1/gpus?limit=1&cursor=${first.body.nextCursor}`).expect(200);
    expect(second.body).toMatchObject({ gpus: [{ id: GPU_B }], nextCursor: null });
    expect(
      (await api().get('/v1/gpus?hostname=node-2').expect(200)).body.gpus.map((g: { id: string }) => g.id),
    ).toEqual([GPU_B]);
  });
});

describe('GET /v1/gpus/:gpuId/telemetry', () => {
  it('returns samples in time order, start inclusive and end exclusive', async () => {
    const res = await api()
      .get(`/v1/gpus/${GPU_A}/telemetry`)
      .query({ metric: 'DCGM_FI_DEV_GPU_TEMP', start_time: at(10), end_time: at(13) })
      .expect(200);
    expect(res.body.gpuId).toBe(GPU_A);
    expect(res.body.samples.map((s: { timestamp: string; value: number }) => [s.timestamp, s.value])).toEqual(
      [
        [at(10), 40],
        [at(11), 41],
        [at(12), 42],
      ],
    );
    expect(res.body.samples[0]).toEqual(
      expect.objectContaining({
        metricName: 'DCGM_FI_DEV_GPU_TEMP',
        modelName: 'NVIDIA H100 80GB HBM3',
        hostname: 'node-1',
        container: null,
        labels: { pci_bus_id: '00000000:18:00.0' },
      }),
    );
    expect(res.body.nextCursor).toBeNull();
  });

  it('keeps microseconds: in the times it shows and in its bounds', async () => {
    const gpuId = 'GPU-micro';
    const times = ['2026-11-20T09:00:00.000400Z', '2026-11-20T09:00:00.000800Z', '2026-11-20T09:00:00.001Z'];
    await streamer.ingest.handle([
      message(times.map((timestamp, i) => sample({ gpuId, timestamp, value: i, metricName: 'MICRO' }))),
    ]);
    const page = (start_time: string, end_time: string) =>
      api()
        .get(`/v1/gpus/${gpuId}/telemetry`)
        .query({ start_time, end_time })
        .expect(200)
        .then((res) =>
          res.body.samples.map((r: { timestamp: string; value: number }) => [r.timestamp, r.value]),
        );
    expect(await page('2026-11-20T09:00:00Z', '2026-11-20T09:00:01Z')).toEqual([
      ['2026-11-20T09:00:00.000400Z', 0],
      ['2026-11-20T09:00:00.000800Z', 1],
      ['2026-11-20T09:00:00.001Z', 2],
    ]);
    // Start inclusive and end exclusive to the microsecond.
    expect(await page('2026-11-20T09:00:00.000500Z', '2026-11-20T09:00:00.000800Z')).toEqual([]);
    expect(await page('2026-11-20T09:00:00.000800Z', '2026-11-20T09:00:00.000801Z')).toEqual([
      ['2026-11-20T09:00:00.000800Z', 1],
    ]);
    expect(await page('2026-11-20T10:00:00.000800+01:00', '2026-11-20T09:00:00.0011Z')).toEqual([
      ['2026-11-20T09:00:00.000800Z', 1],
      ['2026-11-20T09:00:00.001Z', 2],
    ]);
  });

  it('returns every metric without a filter, and NaN as a string', async () => {
    const res = await api()
      .get(`/v1/gpus/${GPU_A}/telemetry`)
      .query({ start_time: at(5), end_time: at(6) })
      .expect(200);
    expect(res.body.samples).toHaveLength(3);
    expect(res.body.samples.map((s: { value: unknown }) => s.value)).toContain('NaN');
  });

  it('pages with a keyset cursor: every sample exactly once, in order', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: request.Response = await api()
        .get(`/v1/gpus/${GPU_A}/telemetry`)
        .query({ start_time: at(0), end_time: at(120), limit: 37, ...(cursor ? { cursor } : {}) })
        .expect(200);
      seen.push(
        ...res.body.samples.map((s: { uuid: string; timestamp: string }) => `${s.timestamp} ${s.uuid}`),
      );
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(241);
    expect(new Set(seen).size).toBe(241);
    const times = seen.map((s) => s.split(' ')[0]);
    expect([...times].sort()).toEqual(times);
  });

  it('defaults to the last hour', async () => {
    const res = await api().get(`/v1/gpus/${GPU_A}/telemetry`).expect(200);
    expect(res.body.samples).toEqual([]);
  });
});

describe('GET /v1/gpus/:gpuId/metrics/:metric/series', () => {
  it('returns avg, min, max and count per bucket, leaving NaN out', async () => {
    const res = await api()
      .get(`/v1/gpus/${GPU_A}/metrics/DCGM_FI_DEV_GPU_UTIL/series`)
      .query({ start_time: at(0), end_time: at(20), step: '10m' })
      .expect(200);
    expect(res.body).toEqual({
      gpuId: GPU_A,
      metric: 'DCGM_FI_DEV_GPU_UTIL',
      stepSeconds: 600,
      buckets: [
        { start: at(0), count: 10, avg: 4.5, min: 0, max: 9 },
        { start: at(10), count: 10, avg: 14.5, min: 10, max: 19 },
      ],
    });
  });
});

describe('GET /v1/gpus/metrics/:metric/series', () => {
  it('aggregates the metric over every GPU that reports it, or those of one host', async () => {
    const res = await api()
      .get('/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series')
      .query({ start_time: at(0), end_time: at(20), step: '10m' })
      .expect(200);
    expect(res.body).toEqual({
      metric: 'DCGM_FI_DEV_GPU_UTIL',
      stepSeconds: 600,
      series: 3,
      buckets: [
        { start: at(0), count: 11, avg: (45 + 50) / 11, min: 0, max: 50 },
        { start: at(10), count: 10, avg: 14.5, min: 10, max: 19 },
      ],
    });
    const host = await api()
      .get('/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series')
      .query({ start_time: at(0), end_time: at(20), step: '10m', hostname: 'node-2' })
      .expect(200);
    expect(host.body).toMatchObject({ series: 1, buckets: [{ start: at(0), count: 1, avg: 50 }] });
  });

  it('answers an unknown metric with no buckets, and names bad fields', async () => {
    const none = await api().get('/v1/gpus/metrics/NOT_REPORTED/series').expect(200);
    expect(none.body).toEqual({ metric: 'NOT_REPORTED', stepSeconds: 3600, series: 0, buckets: [] });
    for (const [query, field] of [
      ['step=0s', 'step'],
      ['model=x&other=1', 'other'],
      [`start_time=${at(0)}&end_time=${at(6000)}&step=1s`, 'step'],
    ]) {
      const res = await api().get(`/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series?${query}`).expect(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    await api().get('/v1/gpus/metrics/not-a-metric!/series').expect(400);
  });
});

describe('bad input', () => {
  const t = `/v1/gpus/${GPU_A}/telemetry`;
  const s = `/v1/gpus/${GPU_A}/metrics/DCGM_FI_DEV_GPU_UTIL/series`;
  it.each([
    ['/v1/gpus/GPU%20bad!/telemetry', 400, 'gpuId'],
    [`${t}?start_time=yesterday`, 400, 'start_time'],
    [`${t}?end_time=2026-13-01T00:00:00Z`, 400, 'end_time'],
    [`${t}?start_time=${at(10)}&end_time=${at(10)}`, 400, 'start_time'],
    [`${t}?start_time=${at(11)}&end_time=${at(10)}`, 400, 'start_time'],
    [`${t}?limit=0`, 400, 'limit'],
    [`${t}?limit=10001`, 400, 'limit'],
    [`${t}?limit=ten`, 400, 'limit'],
    [`${t}?cursor=bm9wZQ`, 400, 'cursor'],
    [`${t}?metric=not-a-metric!`, 400, 'metric'],
    [`${t}?sort=desc`, 400, 'sort'],
    [`${t}?metric=a&metric=b`, 400, 'metric'],
    [`${s}?step=0s`, 400, 'step'],
    [`${s}?step=fast`, 400, 'step'],
    [`${s}?step=1.5s`, 400, 'step'],
    [`${s}?step=1500ms`, 400, 'step'],
    [`${s}?start_time=${at(0)}&end_time=${at(6000)}&step=1s`, 400, 'step'],
    ['/v1/gpus/GPU-unknown/telemetry', 404, undefined],
    ['/v1/gpus/GPU-unknown/metrics/DCGM_FI_DEV_GPU_UTIL/series', 404, undefined],
    ['/v1/gpus?limit=-1', 400, 'limit'],
    // Each of these once reached Postgres and came back naming no field but "body".
    ['/v1/gpus?cursor=AA', 400, 'cursor'],
    ['/v1/gpus?hostname=%00', 400, 'hostname'],
    ['/v1/gpus?hostname=%ED%A0%80', 200, undefined], // a lone surrogate's bytes arrive as U+FFFD
    ['/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series?model=%00', 400, 'model'],
    [`${s}?step=99999999999d`, 400, 'step'],
    ['/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series?step=106751992d', 400, 'step'],
    [`${t}?start_time=0000-06-01T00:00:00Z`, 400, 'start_time'],
    [`${t}?end_time=9999-12-31T23:59:59-01:00`, 400, 'end_time'],
  ])('%s is %i', async (url, status, field) => {
    const res = await api().get(url).expect(status);
    if (status >= 400) expect(res.headers['content-type']).toContain('application/problem+json');
    if (field) expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual([field]);
  });

  it('says a parameter given twice must be given once, not what a list of them fails to be', async () => {
    const res = await api().get('/v1/gpus?limit=1&limit=2').expect(400);
    expect(res.body.errors).toEqual([{ field: 'limit', message: 'must be given once, not 2 times' }]);
    const metric = await api().get(`/v1/gpus/${GPU_A}/telemetry?metric=a&metric=b`).expect(400);
    expect(metric.body.errors).toEqual([{ field: 'metric', message: 'must be given once, not 2 times' }]);
  });

  it('treats SQL in parameters as data', async () => {
    const count = () => streamer.database.pool.query('SELECT count(*)::int AS n FROM telemetry');
    const before = (await count()).rows[0].n;
    expect(before).toBeGreaterThan(0);
    await api().get(`/v1/gpus/GPU-1';DROP TABLE telemetry;--/telemetry`).expect(400);
    await api()
      .get('/v1/gpus')
      .query({ hostname: "x' OR '1'='1" })
      .expect(200, { gpus: [], nextCursor: null });
    expect((await count()).rows[0].n).toBe(before);
  });
});
