import fc from 'fast-check';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * Random, malformed and injected input against every query endpoint: the answer is a 2xx or a 4xx
 * problem naming the field, never a 5xx, the data is untouched and the service keeps answering.
 */
let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;
let storedRows: number;

beforeAll(async () => {
  streamer = await startStreamerTestApp();
  const samples = [0, 1].flatMap((gpu) =>
    ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP'].map((metricName) =>
      sample({ gpuId: `GPU-${gpu}`, gpuIndex: gpu, metricName, value: 40 + gpu }),
    ),
  );
  await streamer.ingest.handle([message(samples)]);
  storedRows = await countRows();
});

afterAll(async () => {
  await streamer.close();
});

async function countRows(): Promise<number> {
  const { rows } = await streamer.database.pool.query('SELECT count(*)::int AS n FROM telemetry');
  return rows[0].n;
}

/** What attackers and broken clients send: injection, traversal, control and odd Unicode. */
const hostile = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(
    "' OR 1=1 --",
    "x'; DROP TABLE telemetry; --",
    '1; SELECT pg_sleep(10)',
    '../../etc/passwd',
    '%00',
    '\u0000',
    '\ud800',
    '-1',
    '1e309',
    'NaN',
    '9'.repeat(400),
    '2026-13-45T99:99:99Z',
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:59Z',
    '{"a":1}',
    'x'.repeat(5_000),
  ),
);
/** Percent-encodes the UTF-8 bytes (a lone surrogate becomes U+FFFD, as a browser would send it). */
const enc = (text: string) =>
  [...Buffer.from(text)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
const queryString = (params: Record<string, string | string[]>) =>
  Object.entries(params)
    .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v) => `${key}=${enc(v)}`))
    .join('&');

const queryKeys = fc.constantFrom(
  'limit',
  'cursor',
  'hostname',
  'start_time',
  'end_time',
  'metric',
  'step',
  'model',
  'other',
);
const query = fc.dictionary(queryKeys, fc.oneof(hostile, fc.array(hostile, { maxLength: 3 })), {
  maxKeys: 4,
});
const paths = fc.oneof(
  fc.constant('/v1/gpus'),
  hostile.map((id) => `/v1/gpus/${enc(id)}/telemetry`),
  fc.tuple(hostile, hostile).map(([id, metric]) => `/v1/gpus/${enc(id)}/metrics/${enc(metric)}/series`),
  fc.constant('/v1/gpus/GPU-0/metrics/DCGM_FI_DEV_GPU_UTIL/series'),
  fc.constant('/v1/gpus/GPU-0/telemetry'),
  fc.constant('/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series'),
  hostile.map((metric) => `/v1/gpus/metrics/${enc(metric)}/series`),
  fc.constant('/v1/gpus/%ff%fe%fd/telemetry'),
  fc.constant('/v1/gpus/%E0%A4%A/telemetry'),
);

describe('hostile input to the query API', () => {
  it('answers random paths and query strings with 2xx or a 4xx problem, never 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(paths, query, async (path, params) => {
        const res = await request(asService(streamer.app)).get(`${path}?${queryString(params)}`);
        expect(res.status).toBeLessThan(500);
        // (Past 16 KiB of URL, Node answers 431 before the app; serve.test.ts covers that answer.)
        if (res.status >= 400 && res.status !== 431) {
          expect(res.headers['content-type']).toContain('application/problem+json');
          expect(res.body.status).toBe(res.status);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('treats injected SQL in every parameter as data', async () => {
    const injection = "x' OR '1'='1'; DELETE FROM telemetry; --";
    for (const path of [
      `/v1/gpus?hostname=${enc(injection)}`,
      `/v1/gpus?cursor=${enc(injection)}`,
      `/v1/gpus/${enc(injection)}/telemetry`,
      `/v1/gpus/GPU-0/telemetry?metric=${enc(injection)}`,
      `/v1/gpus/GPU-0/telemetry?cursor=${enc(injection)}`,
      `/v1/gpus/GPU-0/metrics/${enc(injection)}/series`,
      `/v1/gpus/metrics/${enc(injection)}/series`,
      `/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series?hostname=${enc(injection)}&model=${enc(injection)}`,
    ]) {
      const res = await request(asService(streamer.app)).get(path);
      expect([200, 400, 404]).toContain(res.status);
      if (res.status === 200 && Array.isArray(res.body.gpus)) expect(res.body.gpus).toEqual([]);
    }
    expect(await countRows()).toBe(storedRows);
  });

  it('refuses bodies, odd methods and oversized query strings without falling over', async () => {
    // Paths the API has, asked with methods it does not take: 405, naming the ones it does.
    expect(
      (await request(asService(streamer.app)).post('/v1/gpus').send({ a: 1 }).expect(405)).headers['allow'],
    ).toBe('GET, HEAD');
    const wrong = await request(asService(streamer.app)).delete('/v1/gpus/GPU-0/telemetry').expect(405);
    expect(wrong.headers['allow']).toBe('GET, HEAD');
    expect(wrong.body.detail).toBe('DELETE is not allowed on /v1/gpus/GPU-0/telemetry; it takes GET, HEAD.');
    await request(asService(streamer.app)).delete('/v1/nothing-here').expect(404);
    const long = await request(asService(streamer.app))
      .get(`/v1/gpus?hostname=${'h'.repeat(600)}`)
      .expect(400);
    expect(JSON.stringify(long.body)).toContain('hostname');
    await request(asService(streamer.app)).get('/v1/gpus/%ff%fe/telemetry').expect(400);
    await request(asService(streamer.app)).get('/healthz').expect(200);
  });
});
