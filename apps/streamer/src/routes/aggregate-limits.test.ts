import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * The REST aggregates hold what they decode in the streamer, and their reads hold a connection:
 * each is bounded by PROMQL_MAX_SAMPLES, as a PromQL query is, and by QUERY_TIMEOUT.
 */
let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;
const base = Date.parse('2026-11-20T10:00:00.000Z');
const at = (minutes: number) => new Date(base + minutes * 60_000).toISOString();
const HOURS = 4;
const gpu = (i: number) => `GPU-limits-${i}`;
const fleet = '/v1/gpus/metrics/DCGM_FI_DEV_GPU_UTIL/series';
const range = { start_time: at(0), end_time: at(HOURS * 60) };

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, PROMQL_MAX_SAMPLES: 1_000, QUERY_TIMEOUT: 500 },
  });
  // Five GPUs, a sample a minute for four hours: 240 samples each. GPUs 0 and 1 are on node-a.
  const batches = [];
  for (let i = 0; i < 5; i++) {
    const samples = [];
    for (let m = 0; m < HOURS * 60; m++) {
      samples.push(
        sample({ gpuId: gpu(i), hostname: i < 2 ? 'node-a' : 'node-b', timestamp: at(m), value: i * 10 }),
      );
    }
    for (let k = 0; k < samples.length; k += 120) batches.push(message(samples.slice(k, k + 120)));
  }
  await streamer.ingest.handle(batches);
  expect((await streamer.compactor.compactDue()).chunks).toBe(HOURS);
});

afterAll(async () => {
  await streamer.close();
});

const api = () => request(asService(streamer.app));

describe('an aggregate over more stored samples than PROMQL_MAX_SAMPLES', () => {
  it.each([
    ['raw samples (10 s steps)', '10s'],
    ['1-minute rollups', '1m'],
  ])('is refused from %s, naming the step, and answers once fewer GPUs are picked', async (_, step) => {
    // 5 GPUs x 240 samples (or 1-minute buckets) = 1,200 > 1,000.
    const refused = await api()
      .get(fleet)
      .query({ ...range, step })
      .expect(400);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.body.errors).toEqual([
      {
        field: 'step',
        message: expect.stringMatching(
          /would decode about 1,200 stored samples for 5 series.*PROMQL_MAX_SAMPLES/,
        ),
      },
    ]);

    // Two GPUs: 480.
    const one = await api()
      .get(fleet)
      .query({ ...range, step, hostname: 'node-a' })
      .expect(200);
    expect(one.body.series).toBe(2);
    const buckets = one.body.buckets as { count: number; avg: number }[];
    expect(buckets.reduce((sum, b) => sum + b.count, 0)).toBe(480);
    expect(buckets.every((b) => b.avg === 5)).toBe(true);
  });

  it('is answered at a step that reads fewer: 1-hour rollups', async () => {
    const res = await api()
      .get(fleet)
      .query({ ...range, step: '1h' })
      .expect(200);
    expect(res.body.buckets).toEqual(
      Array.from({ length: HOURS }, (_, h) => ({
        start: at(h * 60),
        count: 5 * 60,
        avg: 20,
        min: 0,
        max: 40,
      })),
    );
  });
});

describe('an aggregate whose reads run past QUERY_TIMEOUT', () => {
  it('is cancelled in Postgres and answered 503, leaving the connection usable', async () => {
    const holder = await streamer.database.pool.connect();
    try {
      // The blocks are locked away: the read waits, and its statement timeout ends the wait.
      await holder.query('BEGIN; LOCK TABLE telemetry_blocks IN ACCESS EXCLUSIVE MODE');
      const started = performance.now();
      const res = await api()
        .get(fleet)
        .query({ ...range, step: '10s', hostname: 'node-a' })
        .expect(503);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body.detail).toMatch(/ran past 500 ms \(QUERY_TIMEOUT\)/);
      await holder.query('ROLLBACK');
      const after = await api()
        .get(fleet)
        .query({ ...range, step: '1h', hostname: 'node-a' })
        .expect(200);
      expect(after.body.series).toBe(2);
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
  });
});
