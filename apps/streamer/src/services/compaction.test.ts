import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { asService } from '@gpu-telemetry/service-kit/testing';
import type { PoolClient } from 'pg';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { createApp } from '../app';
import { waitForLockWaiters } from '../testing/locks';
import { compactorWith, STREAMER_TEST_CONFIG, startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * Closed chunks become one block per series; every read serves hot and compacted samples alike,
 * late samples merge into their block once, and a writer caught by a compaction loses nothing.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
const GPU = 'GPU-compact-0';
const MINUTE = 60_000;
// Eight minutes of samples every 10 s, ending a minute ago: one-minute chunks, all closed.
const base = Math.floor((Date.now() - 10 * MINUTE) / MINUTE) * MINUTE;
const at = (s: number) => new Date(base + s * 1000).toISOString();
const METRICS = ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_POWER_USAGE'];

function fleetSamples(gpuId: string, fromS: number, toS: number) {
  const samples = [];
  for (let s = fromS; s < toS; s += 10) {
    samples.push(sample({ gpuId, metricName: METRICS[0], timestamp: at(s), value: (s / 10) % 100 }));
    samples.push(sample({ gpuId, metricName: METRICS[1], timestamp: at(s), value: 70 + (s % 7) * 1.25 }));
  }
  return samples;
}

const config = { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 };

beforeAll(async () => {
  streamer = await startStreamerTestApp({ config });
  const samples = fleetSamples(GPU, 0, 480);
  samples.push(
    sample({
      gpuId: GPU,
      metricName: METRICS[0],
      timestamp: at(25),
      value: 'NaN',
      labels: { GPU_I_ID: '1' },
    }),
  );
  await streamer.ingest.handle([message(samples.slice(0, 50)), message(samples.slice(50))]);
});

afterAll(async () => {
  await streamer.close();
});

const api = (app: TestApp = streamer) => request(asService(app.app));

async function page(query: Record<string, string | number>, app: TestApp = streamer) {
  const res = await api(app)
    .get(`/v1/gpus/${GPU}/telemetry`)
    .query({ start_time: at(-60), end_time: at(600), ...query })
    .expect(200);
  return res.body as {
    samples: Array<{ uuid: string; timestamp: string; metricName: string; value: unknown }>;
    nextCursor: string | null;
  };
}

async function everySample(limit: number, app: TestApp = streamer, query: Record<string, string> = {}) {
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const body = await page({ limit, ...query, ...(cursor ? { cursor } : {}) }, app);
    seen.push(...body.samples.map((s) => `${s.timestamp} ${s.metricName} ${s.uuid} ${String(s.value)}`));
    cursor = body.nextCursor;
  } while (cursor);
  return seen;
}

const hotRows = async () =>
  (await streamer.database.pool.query('SELECT count(*)::int AS n FROM telemetry_samples')).rows[0]
    .n as number;

describe('compaction', () => {
  let before: string[];
  let seriesBefore: unknown;

  it('rewrites each closed chunk as one block per series and empties its hot partition', async () => {
    before = await everySample(1000);
    expect(before).toHaveLength(97);
    seriesBefore = (
      await api()
        .get(`/v1/gpus/${GPU}/metrics/${METRICS[1]}/series`)
        .query({ start_time: at(0), end_time: at(480), step: '2m' })
        .expect(200)
    ).body;
    const done = await streamer.compactor.compactDue();
    expect(done).toEqual({ chunks: 8, samples: 97, blocks: 8 * 2 + 1 });
    expect(await hotRows()).toBe(0);
    const { rows } = await streamer.database.pool.query(
      'SELECT count(*)::int AS chunks, sum(samples)::int AS samples FROM telemetry_chunks WHERE compacted_at IS NOT NULL',
    );
    expect(rows[0]).toEqual({ chunks: 8, samples: 97 });
    expect(await streamer.compactor.compactDue()).toEqual({ chunks: 0, samples: 0, blocks: 0 });
  });

  it('serves the same samples, in the same order, whole and in pages of any size', async () => {
    expect(await everySample(1000)).toEqual(before);
    for (const limit of [1, 7, 12, 13, 50]) expect(await everySample(limit)).toEqual(before);
    const one = await everySample(5, streamer, { metric: METRICS[1] });
    expect(one).toEqual(before.filter((s) => s.includes(METRICS[1])));
  });

  it('serves the same aggregates', async () => {
    const res = await api()
      .get(`/v1/gpus/${GPU}/metrics/${METRICS[1]}/series`)
      .query({ start_time: at(0), end_time: at(480), step: '2m' })
      .expect(200);
    expect(res.body).toEqual(seriesBefore);
  });

  it('pages across hot and compacted chunks alike', async () => {
    await streamer.ingest.handle([message(fleetSamples(GPU, 480, 600))]);
    expect(await hotRows()).toBe(24);
    const all = await everySample(1000);
    expect(all).toHaveLength(97 + 24);
    for (const limit of [5, 24, 100]) expect(await everySample(limit)).toEqual(all);
  });

  it('shows compacted samples through the telemetry view, decoded by Postgres', async () => {
    const { rows } = await streamer.database.pool.query(
      `SELECT "timestamp", metric_name, uuid, value FROM telemetry WHERE gpu_id = $1 ORDER BY "timestamp", series_id`,
      [GPU],
    );
    const viaSql = rows.map(
      (r) =>
        `${r.timestamp.toISOString()} ${r.metric_name} ${r.uuid} ${Number.isNaN(r.value) ? 'NaN' : String(r.value)}`,
    );
    expect(viaSql).toEqual(await everySample(1000));
  });

  it('serves a time range, hot and compacted, through telemetry_between (for dashboards)', async () => {
    const { rows } = await streamer.database.pool.query(
      `SELECT count(*)::int AS n, min(ts) AS first, max(ts) AS last
       FROM telemetry_between(ARRAY(SELECT id FROM telemetry_series WHERE gpu_id = $3 AND metric_name = $4), $1, $2)`,
      [at(55), at(545), GPU, METRICS[0]],
    );
    expect(rows[0]).toEqual({ n: 49, first: new Date(at(60)), last: new Date(at(540)) });
    // The ids as an array value (a dashboard's variable), with ids no series holds or could.
    const { rows: ids } = await streamer.database.pool.query(
      'SELECT id FROM telemetry_series WHERE gpu_id = $1 AND metric_name = $2',
      [GPU, METRICS[0]],
    );
    const given = await streamer.database.pool.query(
      `SELECT count(*)::int AS n FROM telemetry_between($3::bigint[], $1, $2)`,
      [at(55), at(545), [...ids.map((r: { id: string }) => r.id), '2147483647', '2147483648', '-1']],
    );
    expect(given.rows[0].n).toBe(49);
  });
});

describe('late samples', () => {
  it('merges a sample for a compacted chunk into its block, once, and serves it', async () => {
    const late = sample({ gpuId: GPU, metricName: METRICS[0], timestamp: at(15), value: 42 });
    const lateMessage = message([late]);
    const before = await everySample(1000);
    await streamer.ingest.handle([lateMessage]);
    await streamer.ingest.handle([lateMessage, lateMessage]);
    const after = await everySample(1000);
    expect(after).toHaveLength(before.length + 1);
    expect(after.filter((s) => s.startsWith(`${at(15)} ${METRICS[0]}`))).toHaveLength(1);
    expect(await hotRows()).toBe(24);
    const merged = await streamer.metrics.registry.getSingleMetricAsString(
      'streamer_late_samples_merged_total',
    );
    expect(merged).toMatch(/streamer_late_samples_merged_total\{[^}]*\} 1$/m);
  });

  it('stores nothing twice when a redelivered batch spans hot and compacted chunks', async () => {
    const batch = message(fleetSamples(GPU, 300, 600));
    const before = await everySample(1000);
    await streamer.ingest.handle([batch]);
    expect(await everySample(1000)).toEqual(before);
  });

  it('starts a block for a series new to a compacted chunk', async () => {
    const gpuId = 'GPU-compact-late';
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: at(100), value: 1 })])]);
    const res = await api()
      .get(`/v1/gpus/${gpuId}/telemetry`)
      .query({ start_time: at(0), end_time: at(600) })
      .expect(200);
    expect(res.body.samples.map((s: { value: number }) => s.value)).toEqual([1]);
    expect(await hotRows()).toBe(24);
  });
});

describe('a writer caught by a compaction', () => {
  it('waits, finds the chunk compacted, and merges its samples into the blocks', async () => {
    const local = await startStreamerTestApp({ config });
    const holder: PoolClient = await local.database.pool.connect();
    try {
      const gpuId = 'GPU-race';
      await local.ingest.handle([message(fleetSamples(gpuId, 0, 60))]);
      const [chunk] = await local.database.pool
        .query(`SELECT chunk_start, chunk_end FROM telemetry_chunks WHERE chunk_start = $1`, [new Date(base)])
        .then((r) => r.rows);
      // An insert in flight on the chunk holds the compactor at the door...
      await holder.query('BEGIN');
      await holder.query(`LOCK TABLE ${'telemetry_samples_' + partitionSuffix(base)} IN ROW EXCLUSIVE MODE`);
      const compacting = local.compactor.compactChunk({
        start: chunk.chunk_start.getTime(),
        end: chunk.chunk_end.getTime(),
      });
      await waitForLockWaiters(local.database.pool, 1);
      // ...and a new writer queues behind the compactor.
      const writing = local.ingest.handle([
        message([sample({ gpuId, metricName: METRICS[0], timestamp: at(5), value: 7 })]),
      ]);
      await waitForLockWaiters(local.database.pool, 2);
      await holder.query('COMMIT');
      expect(await compacting).toEqual({ samples: 12, blocks: 2 });
      expect(await writing).toEqual({ failed: [] });
      const res = await api(local)
        .get(`/v1/gpus/${gpuId}/telemetry`)
        .query({ start_time: at(0), end_time: at(60), metric: METRICS[0] })
        .expect(200);
      expect(res.body.samples.map((s: { timestamp: string }) => s.timestamp)).toEqual(
        [0, 5, 10, 20, 30, 40, 50].map((s) => at(s)),
      );
      expect(
        await local.metrics.registry.getSingleMetricAsString('streamer_late_samples_merged_total'),
      ).toMatch(/ 1$/m);
    } finally {
      holder.release();
      await local.close();
    }
  });
});

describe('a queue backlog', () => {
  it('holds back the chunks it still feeds, and only those', async () => {
    const local = await startStreamerTestApp({ config });
    try {
      await local.ingest.handle([message(fleetSamples('GPU-backlog', 0, 480))]);
      let backlogMs = Date.now() - (base + 5 * MINUTE);
      const compactor = compactorWith(local, { backlogAgeMs: async () => backlogMs });
      // The oldest unconsumed message was published 5 minutes into the data: chunks ending by then go.
      expect((await compactor.compactDue()).chunks).toBe(5);
      backlogMs = 0;
      expect((await compactor.compactDue()).chunks).toBe(3);
    } finally {
      await local.close();
    }
  });

  it('is taken to have aged while the queue cannot be reached, for up to an hour', async () => {
    const local = await startStreamerTestApp({ config });
    try {
      await local.ingest.handle([message(fleetSamples('GPU-outage', 0, 480))]);
      let now = Date.now();
      let reported: number | undefined = now - (base + 3 * MINUTE);
      const compactor = compactorWith(local, { backlogAgeMs: async () => reported, now: () => now });
      // Of the eight chunks of data (the empty ones the maintainer made ahead aside).
      const compacted = async () =>
        (
          await local.database.pool.query(
            'SELECT count(*)::int AS n FROM telemetry_chunks WHERE compacted_at IS NOT NULL AND chunk_start < $1',
            [new Date(base + 8 * MINUTE)],
          )
        ).rows[0].n;
      await compactor.compactDue();
      expect(await compacted()).toBe(3);
      // The queue goes down, and 10 minutes on the message that was oldest is still unconsumed.
      reported = undefined;
      now += 10 * MINUTE;
      await compactor.compactDue();
      expect(await compacted()).toBe(3);
      // Unknown for more than an hour: compaction goes on (late samples would be merged).
      now += 60 * MINUTE;
      await compactor.compactDue();
      expect(await compacted()).toBe(8);
    } finally {
      await local.close();
    }
  });

  it('holds nothing back before the queue was ever reached (a late sample is merged, not lost)', async () => {
    const local = await startStreamerTestApp({ config });
    try {
      await local.ingest.handle([message(fleetSamples('GPU-unknown', 0, 480))]);
      const compactor = compactorWith(local, { backlogAgeMs: async () => undefined });
      expect((await compactor.compactDue()).chunks).toBe(8);
    } finally {
      await local.close();
    }
  });
});

describe('several streamers', () => {
  it('compact each chunk once between them', async () => {
    const first = await startStreamerTestApp({ config });
    const queue = new QueueClient({ url: 'http://127.0.0.1:9' });
    try {
      await first.ingest.handle([message(fleetSamples('GPU-two', 0, 480))]);
      const replicas = [1, 2, 3].map(
        () =>
          createApp({
            pool: first.database.pool,
            logger: createLogger('streamer', 'silent'),
            queue,
            config: { ...STREAMER_TEST_CONFIG, ...config },
          }).compactor,
      );
      const results = await Promise.all([first.compactor, ...replicas].map((c) => c.compactDue()));
      expect(results.reduce((sum, r) => sum + r.chunks, 0)).toBe(8);
      expect(results.reduce((sum, r) => sum + r.samples, 0)).toBe(96);
      const res = await api(first)
        .get('/v1/gpus/GPU-two/telemetry')
        .query({ start_time: at(0), end_time: at(600) })
        .expect(200);
      expect(res.body.samples).toHaveLength(96);
    } finally {
      await queue.close();
      await first.close();
    }
  });
});

function partitionSuffix(startMs: number): string {
  const iso = new Date(startMs).toISOString();
  return `${iso.slice(0, 10).replaceAll('-', '')}_${iso.slice(11, 19).replaceAll(':', '')}`;
}
