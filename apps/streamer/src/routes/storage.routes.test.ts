import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * GET /v1/storage tells an operator what the telemetry costs: bytes per tier as Postgres counts
 * them (indexes and TOAST included), samples hot and in blocks, and bytes per sample, which drops
 * once chunks compact. The same figures are on /metrics.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
const MINUTE = 60_000;
// Ten minutes of 64 series every 5 s, ending two minutes ago: one-minute chunks, all closed.
const base = Math.floor((Date.now() - 12 * MINUTE) / MINUTE) * MINUTE;
const GPUS = 16;
const METRICS = [
  'DCGM_FI_DEV_GPU_UTIL',
  'DCGM_FI_DEV_POWER_USAGE',
  'DCGM_FI_DEV_GPU_TEMP',
  'DCGM_FI_DEV_SM_CLOCK',
];
const SAMPLES = GPUS * METRICS.length * 120;

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 },
  });
  const batch = [];
  for (let s = 0; s < 600; s += 5) {
    for (let g = 0; g < GPUS; g++) {
      for (const [m, metricName] of METRICS.entries()) {
        batch.push(
          sample({
            gpuId: `GPU-storage-${g}`,
            metricName,
            timestamp: new Date(base + s * 1000 + (g % 3)).toISOString(),
            value: 40 + ((s / 5 + g * m) % 17),
          }),
        );
      }
    }
  }
  const messages = [];
  for (let i = 0; i < batch.length; i += 1_000) messages.push(message(batch.slice(i, i + 1_000)));
  expect((await streamer.ingest.handle(messages)).failed ?? []).toEqual([]);
});

afterAll(async () => {
  await streamer.close();
});

const api = () => request(asService(streamer.app));

interface Report {
  hot: { bytes: number; samples: number; bytesPerSample: number | null; estimated: boolean };
  blocks: { bytes: number; samples: number; blocks: number; bytesPerSample: number | null };
  rollups1m: { bytes: number };
  rollups1h: { bytes: number };
  series: { count: number; bytes: number };
  totalBytes: number;
}

describe('GET /v1/storage', () => {
  it('counts hot samples before compaction, blocks after, and bytes per sample falls', async () => {
    const before = (await api().get('/v1/storage').expect(200)).body as Report;
    expect(before.hot).toMatchObject({ samples: SAMPLES, estimated: false });
    expect(before.blocks).toMatchObject({ samples: 0, blocks: 0, bytesPerSample: null });
    expect(before.series.count).toBe(GPUS * METRICS.length);
    expect(before.hot.bytesPerSample).toBeCloseTo(before.hot.bytes / SAMPLES, 1);

    // The maintainer's round compacts, then measures: the gauges change before anyone asks.
    expect((await streamer.maintainer.compact()).samples).toBe(SAMPLES);
    const text = (await api().get('/metrics').expect(200)).text;
    expect(text).toMatch(new RegExp(`^streamer_storage_samples\\{tier="blocks"[^}]*\\} ${SAMPLES}$`, 'm'));
    expect(text).toMatch(new RegExp(`^streamer_storage_samples\\{tier="hot"[^}]*\\} 0$`, 'm'));
    expect(text).toMatch(new RegExp(`^streamer_storage_series\\{[^}]*\\} ${GPUS * METRICS.length}$`, 'm'));
    const after = (await api().get('/v1/storage').expect(200)).body as Report;
    expect(after.hot.samples).toBe(0);
    // Ten one-minute chunks, a block per series in each.
    expect(after.blocks).toMatchObject({ samples: SAMPLES, blocks: 10 * GPUS * METRICS.length });
    expect(after.blocks.bytesPerSample).toBeCloseTo(after.blocks.bytes / SAMPLES, 1);
    // Twelve samples per block is few (a block's row and index entry cost ~60 bytes), yet already
    // far below a hot row.
    expect(after.blocks.bytesPerSample as number).toBeLessThan((before.hot.bytesPerSample as number) / 4);
    expect(after.rollups1m.bytes).toBeGreaterThan(0);
    expect(after.rollups1h.bytes).toBeGreaterThan(0);
    expect(after.totalBytes).toBe(
      after.hot.bytes +
        after.blocks.bytes +
        after.rollups1m.bytes +
        after.rollups1h.bytes +
        after.series.bytes,
    );
  });

  it('refuses parameters it does not take, naming them', async () => {
    const res = await api().get('/v1/storage').query({ tier: 'hot' }).expect(400);
    expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(JSON.stringify(res.body)).toContain('tier');
  });
});

describe('GET /readyz', () => {
  it('is ready while Postgres answers, reporting a queue it cannot reach without depending on it', async () => {
    // The test app's queue is 127.0.0.1:9, where nothing listens.
    const res = await request(asService(streamer.app)).get('/readyz').expect(200);
    expect(res.body).toMatchObject({
      status: 'ready',
      service: 'streamer',
      checks: { postgres: 'ok', queue: expect.stringMatching(/^failed: /) },
    });
  });
});
