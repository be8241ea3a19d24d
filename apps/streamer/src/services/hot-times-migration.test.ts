import { createMigrator } from '@gpu-telemetry/db';
import { message, sample } from '../testing/samples';
import { migratedDatabase } from '../testing/migration-test';

/**
 * Migration 0028 (hot samples kept once by telemetry_hot_times instead of a unique key): its down
 * section brings the key back over the same rows, and its up section fills telemetry_hot_times
 * from the hot rows it finds, so a sample stored before it is still stored once after it.
 */
const BEFORE = '0027_telemetry_drop_moves_epoch';
const { database: db, streamer } = migratedDatabase();

/** The hot samples as `metric@ms=value`; `value` reads a row's value (before 0029: its only column). */
async function stored(value = 'telemetry_value(x.value, x.value_dec)'): Promise<string[]> {
  const { rows } = await db().pool.query<{ s: string }>(
    `SELECT s.metric_name || '@' || (extract(epoch FROM x.ts) * 1000)::bigint || '=' || ${value} AS s
     FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id`,
  );
  return rows.map((r) => r.s).sort();
}

describe('migration 0028 (telemetry_hot_times)', () => {
  it('goes down to the unique key and up again, and a sample stored before it is stored once after', async () => {
    const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
    const at = (metricName: string, k: number) =>
      sample({
        gpuId: 'GPU-migrated-hot',
        metricName,
        value: k,
        timestamp: new Date(t0 + k * 1000).toISOString(),
      });
    const first = message([
      at('DCGM_FI_DEV_GPU_UTIL', 0),
      at('DCGM_FI_DEV_GPU_TEMP', 0),
      at('DCGM_FI_DEV_GPU_UTIL', 1),
    ]);
    expect(await streamer().ingest.handle([first])).toEqual({ failed: [] });
    const before = await stored();
    expect(before).toHaveLength(3);

    const migrator = createMigrator(db().db);
    const down = await migrator.migrateTo(BEFORE);
    if (down.error) throw down.error;
    const { rows: key } = await db().pool.query(
      `SELECT indexdef FROM pg_indexes WHERE indexname = 'telemetry_samples_key'`,
    );
    expect(key).toHaveLength(1);
    expect(await stored('x.value')).toEqual(before);

    const up = await migrator.migrateToLatest();
    if (up.error) throw up.error;
    const { rows: times } = await db().pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM telemetry_hot_times h, telemetry_id_set_ids(h.series)`,
    );
    expect(times[0]?.n).toBe(3);

    // The same samples again, with one new: only the new one is stored.
    const again = message([
      ...(first.payload as { samples: unknown[] }).samples,
      at('DCGM_FI_DEV_GPU_TEMP', 1),
    ]);
    expect(await streamer().ingest.handle([again])).toEqual({ failed: [] });
    expect(await stored()).toEqual([...before, `DCGM_FI_DEV_GPU_TEMP@${t0 + 1000}=1`].sort());
  });
});
