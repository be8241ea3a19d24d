import { createLogger } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import { poolWithHook } from '../testing/pool-hook';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { message, sample } from '../testing/samples';
import { PrometheusService } from './prometheus.service';
import { dropChunks } from './telemetry-write.queries';

/**
 * A compaction empties a chunk's hot partition by TRUNCATE, which is not MVCC-safe: a PromQL query
 * whose snapshot was taken before the compaction committed, reading the partition after it, finds
 * it empty, and the blocks that replace it are not in its snapshot. The query sees telemetry_epoch
 * move, and is evaluated again from a newer snapshot.
 */
const MINUTE = 60_000;
const base = Math.floor((Date.now() - 10 * MINUTE) / MINUTE) * MINUTE;
const at = (s: number) => new Date(base + s * 1000).toISOString();
const GPU = 'GPU-race-promql';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 },
  });
  await streamer.ingest.handle([
    message([0, 15, 30, 45].map((s) => sample({ gpuId: GPU, timestamp: at(s), value: s }))),
  ]);
});

afterAll(async () => {
  await streamer.close();
});

function service(pool: Pool): PrometheusService {
  return new PrometheusService({
    pool,
    logger: createLogger('streamer', 'silent'),
    metrics: streamer.streamerMetrics,
    limits: {
      timeoutMs: 30_000,
      maxSamples: 1_000_000,
      maxSeries: 10_000,
      maxConcurrency: 4,
      lookbackDeltaMs: 300_000,
    },
  });
}

/** streamer_promql_retries_total{endpoint="query"}. */
const retries = async () =>
  Number(
    (await streamer.streamerMetrics.promqlRetries.get()).values.find((v) => v.labels.endpoint === 'query')
      ?.value ?? 0,
  );

describe('a PromQL query whose snapshot predates a compaction', () => {
  it('is evaluated again from a newer snapshot, and answers every sample', async () => {
    const before = await retries();
    let compacted: unknown;
    const racing = service(
      poolWithHook(
        streamer.database.pool,
        (text) => text.includes('telemetry_epoch'),
        async () => {
          compacted = await streamer.compactor.compactChunk({ start: base, end: base + MINUTE });
        },
      ),
    );
    const query = `count_over_time(DCGM_FI_DEV_GPU_UTIL{UUID="${GPU}"}[1m])`;
    const result = await racing.instantQuery(query, base + 59_000);
    expect(compacted).toEqual({ samples: 4, blocks: 1 }); // it did commit under the first snapshot
    expect(result.result).toEqual([expect.objectContaining({ value: 4 })]);
    expect(await retries()).toBe(before + 1);

    // Asked again, now that the chunk is compacted: the same answer, from the blocks, first time.
    const plain = await service(streamer.database.pool).instantQuery(query, base + 59_000);
    expect(plain.result).toEqual(result.result);
    expect(await retries()).toBe(before + 1);
  });
});

describe('a PromQL query whose snapshot predates a retention drop', () => {
  it('is evaluated again from a snapshot without the dropped chunks', async () => {
    const gpu = 'GPU-race-retention';
    await streamer.ingest.handle([
      message([120, 135, 150, 165].map((s) => sample({ gpuId: gpu, timestamp: at(s), value: s }))),
    ]);
    const query = `count_over_time(DCGM_FI_DEV_GPU_UTIL{UUID="${gpu}"}[1m])`;
    expect((await service(streamer.database.pool).instantQuery(query, base + 179_000)).result).toEqual([
      expect.objectContaining({ value: 4 }),
    ]);

    // A drop that finds nothing to drop leaves a query in flight alone.
    let before = await retries();
    let dropped: Date[] = [];
    const idle = service(
      poolWithHook(
        streamer.database.pool,
        (text) => text.includes('telemetry_epoch'),
        async () => {
          dropped = await dropChunks(streamer.database.pool, new Date(base - 60 * MINUTE));
        },
      ),
    );
    expect((await idle.instantQuery(query, base + 179_000)).result).toHaveLength(1);
    expect(dropped).toEqual([]);
    expect(await retries()).toBe(before);

    // One that drops the chunk the query is about to read sends it round again.
    before = await retries();
    const racing = service(
      poolWithHook(
        streamer.database.pool,
        (text) => text.includes('telemetry_epoch'),
        async () => {
          dropped = await dropChunks(streamer.database.pool, new Date(base + 3 * MINUTE));
        },
      ),
    );
    const result = await racing.instantQuery(query, base + 179_000);
    expect(dropped.map((d) => d.getTime())).toContain(base + 2 * MINUTE);
    expect(result.result).toEqual([]);
    expect(await retries()).toBe(before + 1);
  });
});
