import { ConfigError } from '@gpu-telemetry/config';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { loadStreamerConfig, sliceLength } from '../config';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { dropCompactedPartitions } from './compaction.queries';

/**
 * Hot samples live in slices of a chunk (TELEMETRY_SLICE), each compacted into blocks on its own;
 * once the chunk is closed and every slice compacted, the slices are merged into one block per
 * series. Reads answer the same throughout, and samples arriving late, even to a slice that has
 * been merged away since the streamer last looked, are stored once.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// An hourly chunk that closed more than an hour ago, in six 10-minute slices.
const base = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
const at = (s: number) => new Date(base + s * 1000).toISOString();
const GPUS = ['GPU-slice-0', 'GPU-slice-1'];
const METRICS = ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_POWER_USAGE'];
const config = {
  TELEMETRY_RETENTION: 0,
  TELEMETRY_CHUNK: HOUR,
  TELEMETRY_SLICE: 10 * MINUTE,
  TELEMETRY_COMPACT_AFTER: 10_000,
};

function scrapes(fromS: number, toS: number) {
  const samples = [];
  for (let s = fromS; s < toS; s += 30)
    for (const gpuId of GPUS)
      for (const [m, metricName] of METRICS.entries())
        samples.push(
          sample({
            gpuId,
            metricName,
            timestamp: at(s),
            value: m === 0 ? (s / 30) % 100 : 70 + (s % 8) * 0.25,
          }),
        );
  return samples;
}

let streamer: TestApp;
const api = () => request(asService(streamer.app));
const query = async (sql: string) => (await streamer.database.pool.query(sql)).rows;

async function everySample(limit: number): Promise<string[]> {
  const seen: string[] = [];
  for (const gpuId of GPUS) {
    let cursor: string | null = null;
    do {
      const res: request.Response = await api()
        .get(`/v1/gpus/${gpuId}/telemetry`)
        .query({ start_time: at(-60), end_time: at(3700), limit, ...(cursor ? { cursor } : {}) })
        .expect(200);
      seen.push(
        ...res.body.samples.map(
          (s: { timestamp: string; metricName: string; value: unknown }) =>
            `${gpuId} ${s.timestamp} ${s.metricName} ${String(s.value)}`,
        ),
      );
      cursor = res.body.nextCursor;
    } while (cursor);
  }
  return seen;
}

async function hourly(): Promise<unknown> {
  const res = await api()
    .get(`/v1/gpus/${GPUS[0]}/metrics/${METRICS[1]}/series`)
    .query({ start_time: at(0), end_time: at(3600), step: '10m' })
    .expect(200);
  return res.body;
}

async function promql(): Promise<unknown> {
  const res = await api()
    .get('/v1/prometheus/api/v1/query_range')
    .query({
      query: `sum(${METRICS[0]})`,
      start: (base + 5 * MINUTE) / 1000,
      end: (base + 55 * MINUTE) / 1000,
      step: 150,
    })
    .expect(200);
  return res.body.data.result;
}

beforeAll(async () => {
  streamer = await startStreamerTestApp({ config });
  await streamer.ingest.handle([message(scrapes(0, 1800)), message(scrapes(1800, 3600))]);
});

afterAll(async () => {
  await streamer.close();
});

describe('slices of a chunk', () => {
  let before: { samples: string[]; hourly: unknown; promql: unknown };
  const slicesOfHour = () =>
    query(
      `SELECT chunk_start, chunk_end FROM telemetry_chunks WHERE chunk_start >= '${at(0)}' AND chunk_end <= '${at(3600)}' ORDER BY 1`,
    );
  /** Pages of any size, buckets and PromQL answer what they did with every slice hot. */
  async function expectAnswersAsBefore() {
    expect(await everySample(1000)).toEqual(before.samples);
    expect(await everySample(7)).toEqual(before.samples);
    expect(await hourly()).toEqual(before.hourly);
    expect(await promql()).toEqual(before.promql);
  }

  it('are the hot partitions: six of the hour, each with its own partition', async () => {
    const slices = await slicesOfHour();
    expect(slices.map((r) => [r.chunk_start.getTime() - base, r.chunk_end.getTime() - base])).toEqual(
      [0, 1, 2, 3, 4, 5].map((i) => [i * 10 * MINUTE, (i + 1) * 10 * MINUTE]),
    );
    before = { samples: await everySample(1000), hourly: await hourly(), promql: await promql() };
    expect(before.samples).toHaveLength(480);
  });

  it('are compacted one by one, and not merged while one of them is hot', async () => {
    const slices = await slicesOfHour();
    for (const slice of slices.slice(0, 5))
      await streamer.compactor.compactChunk({
        start: slice.chunk_start.getTime(),
        end: slice.chunk_end.getTime(),
      });
    await dropCompactedPartitions(streamer.database.pool);
    expect(await streamer.compactor.mergeDue()).toBe(0);
    expect(
      await query(
        `SELECT count(*)::int AS n FROM telemetry_blocks WHERE chunk_start >= '${at(0)}' AND chunk_start < '${at(3600)}'`,
      ),
    ).toEqual([{ n: 20 }]);
    await expectAnswersAsBefore();
    expect((await streamer.compactor.compactDue()).chunks).toBe(1);
    await dropCompactedPartitions(streamer.database.pool);
  });

  it('are merged once the chunk is closed and all compacted: one block per series, one row for the chunk', async () => {
    expect(await streamer.compactor.mergeDue()).toBe(1);
    expect(await streamer.compactor.mergeDue()).toBe(0);
    expect(
      await query(`SELECT chunk_start, chunk_end, samples::int, blocks, exact_rollups FROM telemetry_chunks
                   WHERE chunk_start >= '${at(0)}' AND chunk_end <= '${at(3600)}'`),
    ).toEqual([
      {
        chunk_start: new Date(at(0)),
        chunk_end: new Date(at(3600)),
        samples: 480,
        blocks: 4,
        exact_rollups: true,
      },
    ]);
    expect(
      await query(
        `SELECT n FROM telemetry_blocks WHERE chunk_start >= '${at(0)}' AND chunk_start < '${at(3600)}' ORDER BY series_id`,
      ),
    ).toEqual([{ n: 120 }, { n: 120 }, { n: 120 }, { n: 120 }]);
    expect(
      await query(
        `SELECT count(*)::int AS n FROM telemetry_rollups_1m WHERE start >= '${at(0)}' AND start < '${at(3600)}'`,
      ),
    ).toEqual([{ n: 4 }]);
    await expectAnswersAsBefore();
    const merged = await streamer.metrics.registry.getSingleMetricAsString('streamer_slices_merged_total');
    expect(merged).toMatch(/streamer_slices_merged_total\{[^}]*\} 6$/m);
  });

  it('take a late sample into the merged chunk once, redelivered or not', async () => {
    const late = message([sample({ gpuId: GPUS[0], metricName: METRICS[0], timestamp: at(615), value: 7 })]);
    await streamer.ingest.handle([late]);
    await streamer.ingest.handle([late]);
    const after = await everySample(1000);
    expect(after).toHaveLength(481);
    expect(after).toContain(`${GPUS[0]} ${at(615)} ${METRICS[0]} 7`);
    expect(await query('SELECT count(*)::int AS n FROM telemetry_samples')).toEqual([{ n: 0 }]);
  });
});

/**
 * A streamer of its own holding a sample every 5 minutes of the hour in compacted slices, with
 * partitions dropped; `ingestAt` sends one sample, `values` reads the stored ones back.
 */
async function compactedHour(gpuId: string) {
  const local = await startStreamerTestApp({ config });
  const ingestAt = (s: number, value: number) =>
    local.ingest.handle([message([sample({ gpuId, timestamp: at(s), value })])]);
  for (let s = 0; s < 3600; s += 300) await ingestAt(s, s);
  await local.compactor.compactDue();
  await dropCompactedPartitions(local.database.pool);
  const values = async (toS: number) => {
    const res = await request(asService(local.app))
      .get(`/v1/gpus/${gpuId}/telemetry`)
      .query({ start_time: at(0), end_time: at(toS) })
      .expect(200);
    return res.body.samples.map((s: { value: number }) => s.value);
  };
  return { local, ingestAt, values };
}

describe('a streamer that looked before the merge', () => {
  it('finds the slice it knew gone, looks again and stores the sample once', async () => {
    // The ingest knows each slice as hot. Another streamer compacted them all, and merges them...
    const { local, ingestAt, values } = await compactedHour('GPU-slice-stale');
    try {
      expect(await local.compactor.mergeDue()).toBe(1);
      // ...and this one writes to a slice it still thinks hot: the COPY finds no partition, it
      // looks again and merges the sample into the chunk's block; then once more, knowing better.
      await ingestAt(630, 1);
      await ingestAt(660, 2);
      expect(await values(3600)).toEqual([
        0, 300, 600, 1, 2, 900, 1200, 1500, 1800, 2100, 2400, 2700, 3000, 3300,
      ]);
    } finally {
      await local.close();
    }
  });

  it('with a compacted slice in mind, is told it moved and stores the sample once', async () => {
    const { local, ingestAt, values } = await compactedHour('GPU-slice-moved');
    try {
      // The ingest learns the second slice compacted (a late sample merged into its block)...
      local.ingest.forgetChunks();
      await ingestAt(610, 1);
      // ...then the slices merge, and it sends another sample to the slice it knows.
      expect(await local.compactor.mergeDue()).toBe(1);
      await ingestAt(620, 2);
      await ingestAt(620, 2);
      expect(await values(1200)).toEqual([0, 300, 600, 1, 2, 900]);
    } finally {
      await local.close();
    }
  });
});

describe('TELEMETRY_SLICE', () => {
  it('defaults to the whole chunk', () => {
    expect(sliceLength(HOUR)).toBe(HOUR);
    expect(sliceLength(2 * MINUTE)).toBe(2 * MINUTE);
    expect(sliceLength(HOUR, 10 * MINUTE)).toBe(10 * MINUTE);
  });

  it('must divide the chunk, in whole minutes', () => {
    const load = (env: Record<string, string>) =>
      loadStreamerConfig({
        DATABASE_URL: 'postgres://localhost/telemetry',
        SERVICE_TOKEN: 'x'.repeat(32),
        ...env,
      });
    expect(load({ TELEMETRY_SLICE: '20m' }).TELEMETRY_SLICE).toBe(20 * MINUTE);
    expect(load({}).TELEMETRY_SLICE).toBe(0);
    for (const [env, problem] of [
      [{ TELEMETRY_SLICE: '7m' }, /TELEMETRY_SLICE must divide TELEMETRY_CHUNK \(60m\) \(got "7m"\)/],
      [{ TELEMETRY_SLICE: '2h' }, /TELEMETRY_SLICE must divide TELEMETRY_CHUNK \(60m\)/],
      [
        { TELEMETRY_CHUNK: '5m', TELEMETRY_SLICE: '10m' },
        /TELEMETRY_SLICE must divide TELEMETRY_CHUNK \(5m\)/,
      ],
      [{ TELEMETRY_SLICE: '90s' }, /TELEMETRY_SLICE must be whole minutes/],
    ] as const) {
      expect(() => load(env)).toThrow(ConfigError);
      expect(() => load(env)).toThrow(problem);
    }
  });
});
