import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * A chunk whose compaction fails rolls back whole and is tried again next round, and the chunks
 * after it are compacted all the same: one chunk cannot stop the others.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
const MINUTE = 60_000;
const base = Math.floor((Date.now() - 10 * MINUTE) / MINUTE) * MINUTE;
const at = (s: number) => new Date(base + s * 1000).toISOString();

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 },
  });
  // Three closed one-minute chunks, a sample every 10 s.
  const samples = [];
  for (let s = 0; s < 180; s += 10)
    samples.push(
      sample({ gpuId: 'GPU-fail-0', metricName: 'DCGM_FI_DEV_GPU_UTIL', timestamp: at(s), value: s }),
    );
  await streamer.ingest.handle([message(samples)]);
});

afterAll(async () => {
  await streamer.close();
});

const chunks = async () =>
  (
    await streamer.database.pool.query<{ start: Date; compacted: boolean }>(
      `SELECT chunk_start AS start, compacted_at IS NOT NULL AS compacted FROM telemetry_chunks
       WHERE chunk_start < $1 ORDER BY chunk_start`,
      [new Date(base + 3 * MINUTE).toISOString()],
    )
  ).rows.map((r) => [r.start.getTime() - base, r.compacted]);

const failures = async () => {
  const text = await streamer.metrics.registry.getSingleMetricAsString('streamer_compaction_failures_total');
  return Number(/ (\d+)$/m.exec(text)?.[1] ?? 0);
};

describe('a chunk whose compaction fails', () => {
  it('is left hot and counted, and the chunks after it are compacted', async () => {
    // A block already stored for the middle chunk's series: its compaction breaks the unique key.
    await streamer.database.pool.query(
      `SELECT telemetry_ensure_day('telemetry_blocks', $1::timestamptz::date)`,
      [new Date(base + MINUTE).toISOString()],
    );
    await streamer.database.pool.query(
      `INSERT INTO telemetry_blocks (series_id, chunk_start, n, data)
       SELECT id, $1::timestamptz, 0, '\\x00' FROM telemetry_series`,
      [new Date(base + MINUTE).toISOString()],
    );
    const done = await streamer.compactor.compactDue();
    expect(done).toEqual({ chunks: 2, samples: 12, blocks: 2 });
    expect(await chunks()).toEqual([
      [0, true],
      [MINUTE, false],
      [2 * MINUTE, true],
    ]);
    expect(await failures()).toBe(1);

    // Once what broke it is gone, the next round compacts it, its samples intact.
    await streamer.database.pool.query(`DELETE FROM telemetry_blocks WHERE chunk_start = $1`, [
      new Date(base + MINUTE).toISOString(),
    ]);
    expect(await streamer.compactor.compactDue()).toEqual({ chunks: 1, samples: 6, blocks: 1 });
    const { rows } = await streamer.database.pool.query(
      `SELECT count(*)::int AS n FROM telemetry WHERE gpu_id = 'GPU-fail-0'`,
    );
    expect(rows[0].n).toBe(18);
  });

  it('alone due, does not stop the rest of the maintenance round', async () => {
    const partition = async (start: number) =>
      (
        await streamer.database.pool.query<{ name: string | null }>(
          'SELECT to_regclass(telemetry_chunk_partition($1))::text AS name',
          [new Date(start).toISOString()],
        )
      ).rows[0]?.name;
    expect(await partition(base)).not.toBeNull(); // compacted, its emptied partition not dropped yet
    await streamer.ingest.handle([
      message([sample({ gpuId: 'GPU-fail-0', metricName: 'DCGM_FI_DEV_GPU_UTIL', timestamp: at(190) })]),
    ]);
    await streamer.database.pool.query(
      `INSERT INTO telemetry_blocks (series_id, chunk_start, n, data)
       SELECT id, $1::timestamptz, 0, '\\x00' FROM telemetry_series`,
      [new Date(base + 3 * MINUTE).toISOString()],
    );
    const before = await failures();
    await expect(streamer.maintainer.compact()).resolves.toMatchObject({ chunks: 0 });
    expect(await failures()).toBe(before + 1);
    // The round went on: the compacted chunks' emptied partitions are dropped.
    expect(await partition(base)).toBeNull();
  });
});
