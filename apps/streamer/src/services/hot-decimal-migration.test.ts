import { createMigrator } from '@gpu-telemetry/db';
import { message, sample } from '../testing/samples';
import { migratedDatabase } from '../testing/migration-test';

/**
 * Migration 0029 (hot rows of 40 bytes: 4-byte series ids, values as 4-byte decimals where exact):
 * its down section puts every hot sample back as an 8-byte id and double, and its up section
 * moves them forward again, each value to the last bit.
 */
const BEFORE = '0028_telemetry_hot_times';
const { database: db, streamer } = migratedDatabase();

const t0 = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const VALUES = [87, 245.117, -0.731522, 0.1 + 0.2, 123_456_789_012_345, -1.5e300];

/** One sample of each of VALUES, a second apart from t0. */
const powerSamples = () =>
  VALUES.map((value, k) =>
    sample({
      gpuId: 'GPU-hot-decimal',
      metricName: 'DCGM_FI_DEV_POWER_USAGE',
      value,
      timestamp: new Date(t0 + k * 1000).toISOString(),
    }),
  );

/** The hot samples as (metric, ms, value), `value` read as the schema of the moment stores it. */
async function stored(value: string): Promise<[string, number, number][]> {
  const { rows } = await db().pool.query<{ m: string; ms: string; v: number }>(
    `SELECT s.metric_name AS m, (extract(epoch FROM x.ts) * 1000)::bigint AS ms, ${value} AS v
     FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id ORDER BY 1, 2`,
  );
  return rows.map((r) => [r.m, Number(r.ms), r.v]);
}

async function columnType(column: string): Promise<string | undefined> {
  const { rows } = await db().pool.query<{ t: string }>(
    `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute
     WHERE attrelid = 'telemetry_samples'::regclass AND attname = $1 AND NOT attisdropped`,
    [column],
  );
  return rows[0]?.t;
}

describe('migration 0029 (hot values as 4-byte decimals)', () => {
  it('stores a short decimal in a 40-byte row and any other value in 48', async () => {
    expect(await streamer().ingest.handle([message(powerSamples())])).toEqual({ failed: [] });
    const { rows } = await db().pool.query<{ v: number; bytes: number; decimal: boolean }>(
      `SELECT telemetry_value(x.value, x.value_dec) AS v, pg_column_size(x.*) AS bytes,
              x.value_dec IS NOT NULL AS decimal
       FROM telemetry_samples x ORDER BY x.ts`,
    );
    expect(rows).toEqual([
      { v: 87, bytes: 40, decimal: true },
      { v: 245.117, bytes: 40, decimal: true },
      { v: -0.731522, bytes: 40, decimal: true },
      { v: 0.1 + 0.2, bytes: 48, decimal: false },
      { v: 123_456_789_012_345, bytes: 48, decimal: false },
      { v: -1.5e300, bytes: 48, decimal: false },
    ]);
  });

  it('refuses a row with both values or neither, naming its rule', async () => {
    await expect(
      db().pool.query(`INSERT INTO telemetry_samples (series_id, ts) VALUES (1, $1)`, [new Date(t0)]),
    ).rejects.toThrow(/telemetry_samples_one_value/);
    await expect(
      db().pool.query(
        `INSERT INTO telemetry_samples (series_id, ts, value, value_dec) VALUES (1, $1, 1, 16)`,
        [new Date(t0)],
      ),
    ).rejects.toThrow(/telemetry_samples_one_value/);
  });

  it('goes down to 8-byte ids and doubles and up again, every value kept to the last bit', async () => {
    const before = await stored('telemetry_value(x.value, x.value_dec)');
    expect(before.map(([, , v]) => v)).toEqual(VALUES);

    const migrator = createMigrator(db().db);
    const down = await migrator.migrateTo(BEFORE);
    if (down.error) throw down.error;
    expect(await columnType('series_id')).toBe('bigint');
    expect(await columnType('value_dec')).toBeUndefined();
    expect(await stored('x.value')).toEqual(before);

    const up = await migrator.migrateToLatest();
    if (up.error) throw up.error;
    expect(await columnType('series_id')).toBe('integer');
    expect(await stored('telemetry_value(x.value, x.value_dec)')).toEqual(before);

    // The view and telemetry_between read the new columns.
    const { rows: view } = await db().pool.query<{ v: number }>(
      `SELECT value AS v FROM telemetry WHERE gpu_id = 'GPU-hot-decimal' ORDER BY "timestamp"`,
    );
    expect(view.map((r) => r.v)).toEqual(VALUES);
    const { rows: between } = await db().pool.query<{ v: number }>(
      `SELECT value AS v FROM telemetry_between(ARRAY(SELECT id FROM telemetry_series), $1, $2) ORDER BY ts`,
      [new Date(t0), new Date(t0 + 60_000)],
    );
    expect(between.map((r) => r.v)).toEqual(VALUES);

    // Sent again after it: each sample is still stored once.
    expect(await streamer().ingest.handle([message(powerSamples())])).toEqual({ failed: [] });
    expect(await stored('telemetry_value(x.value, x.value_dec)')).toEqual(before);
  });
});
