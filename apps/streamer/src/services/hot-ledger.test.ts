import { createMigrator } from '@gpu-telemetry/db';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { message, sample } from '../testing/samples';
import { onePerTime } from './prometheus.queries';
import { IngestService } from './ingest.service';
import { createLogger } from '@gpu-telemetry/service-kit';

/**
 * Hot samples have no unique key (series, time): a message's id is kept with its samples
 * (telemetry_ingested), so a redelivery stores nothing, and the same sample sent in two different
 * messages, two rows until its chunk compacts, is read once everywhere, with its greatest value.
 */
const MINUTE = 60_000;
const base = Math.floor((Date.now() - 10 * MINUTE) / MINUTE) * MINUTE;
const at = (s: number) => new Date(base + s * 1000).toISOString();
const config = { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 };
const GPU = 'GPU-ledger';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp({ config });
});

afterAll(async () => {
  await streamer.close();
});

const api = () => request(asService(streamer.app));

async function ledger(): Promise<{ chunk: string; messages: number }[]> {
  const { rows } = await streamer.database.pool.query(
    `SELECT chunk_start AS chunk, count(*)::int AS messages FROM telemetry_ingested GROUP BY 1 ORDER BY 1`,
  );
  return rows.map((r) => ({ chunk: r.chunk.toISOString(), messages: r.messages }));
}

/** The instant vector PromQL answers for `query` at `time` (ms). */
async function promql(query: string, time: number) {
  const res = await api()
    .get('/v1/prometheus/api/v1/query')
    .query({ query, time: time / 1000 })
    .expect(200);
  return res.body.data.result as { metric: Record<string, string>; value: [number, string] }[];
}

describe('the hot ledger', () => {
  it('keeps each message with the last chunk it wrote hot samples in, and forgets it when that chunk compacts', async () => {
    const first = message([
      sample({ gpuId: GPU, timestamp: at(5), value: 1 }),
      sample({ gpuId: GPU, timestamp: at(65), value: 2 }),
    ]);
    const second = message([sample({ gpuId: GPU, timestamp: at(70), value: 3 })]);
    await streamer.ingest.handle([first, second]);
    expect(await ledger()).toEqual([{ chunk: new Date(base + MINUTE).toISOString(), messages: 2 }]);

    // Delivered again while its chunks are hot: nothing stored.
    await streamer.ingest.handle([first]);
    const { rows } = await streamer.database.pool.query('SELECT count(*)::int AS n FROM telemetry_samples');
    expect(rows[0].n).toBe(3);

    expect(await streamer.compactor.compactChunk({ start: base, end: base + MINUTE })).toEqual({
      samples: 1,
      blocks: 1,
    });
    expect(await ledger()).toHaveLength(1); // the message's last chunk is still hot
    await streamer.compactor.compactChunk({ start: base + MINUTE, end: base + 2 * MINUTE });
    expect(await ledger()).toEqual([]);

    // Delivered again once compacted: its samples are late, and merge nowhere twice.
    await streamer.ingest.handle([first, second]);
    const res = await api()
      .get(`/v1/gpus/${GPU}/telemetry`)
      .query({ start_time: at(0), end_time: at(120) })
      .expect(200);
    expect(res.body.samples.map((s: { value: number }) => s.value)).toEqual([1, 2, 3]);
  });

  it('reads a sample sent in two messages once, the same hot and compacted, in PromQL and the REST API', async () => {
    const gpuId = 'GPU-ledger-twice';
    const util = (timestamp: string, value: number) => sample({ gpuId, timestamp, value });
    await streamer.ingest.handle([message([util(at(130), 10), util(at(140), 20)])]);
    // The same times again, from other messages: equal at 140 s, greater at 130 s, smaller at 150 s.
    await streamer.ingest.handle([message([util(at(140), 20), util(at(150), 30)])]);
    await streamer.ingest.handle([message([util(at(130), 15), util(at(150), 25)])]);
    const { rows } = await streamer.database.pool.query(
      `SELECT count(*)::int AS n FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
       WHERE s.gpu_id = $1`,
      [gpuId],
    );
    expect(rows[0].n).toBe(6); // as stored: until compaction, each message's rows

    const query = `count_over_time(DCGM_FI_DEV_GPU_UTIL{UUID="${gpuId}"}[1m])`;
    const maxQuery = `max_over_time(DCGM_FI_DEV_GPU_UTIL{UUID="${gpuId}"}[1m])`;
    const read = async () => ({
      rest: (
        await api()
          .get(`/v1/gpus/${gpuId}/telemetry`)
          .query({ start_time: at(120), end_time: at(180) })
          .expect(200)
      ).body.samples.map((s: { timestamp: string; value: number }) => [s.timestamp, s.value]),
      buckets: (
        await api()
          .get(`/v1/gpus/${gpuId}/metrics/DCGM_FI_DEV_GPU_UTIL/series`)
          .query({ start_time: at(120), end_time: at(180), step: '1m' })
          .expect(200)
      ).body.buckets,
      count: (await promql(query, base + 179_000))[0]?.value[1],
      max: (await promql(maxQuery, base + 179_000))[0]?.value[1],
    });
    const hot = await read();
    expect(hot.rest).toEqual([
      [at(130), 15],
      [at(140), 20],
      [at(150), 30],
    ]);
    expect(hot.buckets).toEqual([{ start: at(120), count: 3, avg: 65 / 3, min: 15, max: 30 }]);
    expect(hot.count).toBe('3');
    expect(hot.max).toBe('30');

    await streamer.compactor.compactChunk({ start: base + 2 * MINUTE, end: base + 3 * MINUTE });
    expect(await read()).toEqual(hot);
  });
});

describe('two streamers given the same messages at once', () => {
  it('store each once, whatever order their batches hold them in', async () => {
    const gpuId = 'GPU-ledger-concurrent';
    const messages = Array.from({ length: 20 }, (_, k) =>
      message([sample({ gpuId, timestamp: at(300 + k), value: k })]),
    );
    const other = await startStreamerTestApp({ config });
    try {
      // The other streamer writes to this one's database: same ledger, same partitions.
      const second = new IngestService({
        pool: streamer.database.pool,
        logger: createLogger('streamer', 'silent'),
        metrics: other.streamerMetrics,
        retentionMs: 0,
        chunkMs: MINUTE,
        compactor: streamer.compactor,
      });
      const results = await Promise.all([
        streamer.ingest.handle(messages),
        second.handle([...messages].reverse()),
      ]);
      expect(results).toEqual([{ failed: [] }, { failed: [] }]);
    } finally {
      await other.close();
    }
    const { rows } = await streamer.database.pool.query(
      `SELECT count(*)::int AS n FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
       WHERE s.gpu_id = $1`,
      [gpuId],
    );
    expect(rows[0].n).toBe(20);
  });
});

describe('onePerTime', () => {
  it('keeps the greatest value of each time stored twice, NaN above all, values moved as their bits', () => {
    const times = Float64Array.from([1, 2, 2, 2, 3, 4, 4, 5, 5]);
    const values = Float64Array.from([10, 20, 22, 21, 0, 41, 40, 50, 0]);
    const words = new Uint32Array(values.buffer);
    for (const i of [4, 8]) {
      words[2 * i] = 0x00000002; // a staleness marker's exact bits
      words[2 * i + 1] = 0x7ff00000;
    }
    const out = onePerTime(times, values);
    expect([...out.times]).toEqual([1, 2, 3, 4, 5]);
    expect([...out.values].map((v) => (Number.isNaN(v) ? 'NaN' : v))).toEqual([10, 22, 'NaN', 41, 'NaN']);
    const bits = new Uint32Array(out.values.buffer, out.values.byteOffset, 10);
    expect([bits[4], bits[5], bits[8], bits[9]]).toEqual([0x00000002, 0x7ff00000, 0x00000002, 0x7ff00000]);
  });

  it('puts samples read out of order in time order', () => {
    const out = onePerTime(Float64Array.from([3, 1, 2, 1]), Float64Array.from([30, 10, 20, 15]));
    expect([...out.times]).toEqual([1, 2, 3]);
    expect([...out.values]).toEqual([15, 20, 30]);
  });

  it('returns the same arrays when they are in order with no time twice', () => {
    const times = Float64Array.from([1, 2, 3]);
    const values = Float64Array.from([1, 2, 3]);
    const out = onePerTime(times, values);
    expect(out.times).toBe(times);
    expect(out.values).toBe(values);
  });
});

describe('migration 0018 down', () => {
  it('keeps one row per series and time, the greatest value, and brings the unique key back', async () => {
    const local = await startStreamerTestApp({ config });
    try {
      const gpuId = 'GPU-ledger-down';
      await local.ingest.handle([message([sample({ gpuId, timestamp: at(200), value: 1 })])]);
      await local.ingest.handle([message([sample({ gpuId, timestamp: at(200), value: 7 })])]);
      await local.ingest.handle([message([sample({ gpuId, timestamp: at(200), value: 3 })])]);
      const { error } = await createMigrator(local.database.db).migrateTo('0017_telemetry_exact_rollups');
      expect(error).toBeUndefined();
      const { rows } = await local.database.pool.query('SELECT value FROM telemetry_samples');
      expect(rows).toEqual([{ value: 7 }]);
      const { rows: index } = await local.database.pool.query(
        `SELECT indexdef FROM pg_indexes WHERE indexname = 'telemetry_samples_key'`,
      );
      expect(index[0].indexdef).toMatch(/UNIQUE INDEX .* \(series_id, ts\)/);
      const up = await createMigrator(local.database.db).migrateToLatest();
      expect(up.error).toBeUndefined();
    } finally {
      await local.close();
    }
  });
});
