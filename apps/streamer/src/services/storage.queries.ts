import type { Pool } from 'pg';

/**
 * What telemetry takes on disk, from Postgres' catalog: every partition's total size (heap,
 * indexes, TOAST, free-space and visibility maps), and the sample counts the compactor keeps in
 * telemetry_chunks. Nothing here reads the samples themselves, except counting hot rows while
 * they are few.
 */

/** The tables telemetry is kept in, each partitioned. */
export type TelemetryTable =
  'telemetry_samples' | 'telemetry_blocks' | 'telemetry_rollups_1m' | 'telemetry_rollups_1h';

export interface PartitionSize {
  name: string;
  bytes: number;
  /** Postgres' estimate of its rows (-1: never analysed). */
  estimatedRows: number;
  pages: number;
}

/** The partitions of one table with their sizes. */
export async function partitionSizes(pool: Pool, table: TelemetryTable): Promise<PartitionSize[]> {
  const { rows } = await pool.query<{ name: string; bytes: string; tuples: number; pages: number }>(
    `SELECT c.relname AS name, pg_total_relation_size(c.oid)::bigint AS bytes,
            c.reltuples AS tuples, c.relpages AS pages
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = $1::regclass
     ORDER BY c.relname`,
    [table],
  );
  return rows.map((r) => ({
    name: r.name,
    bytes: Number(r.bytes),
    estimatedRows: Number(r.tuples),
    pages: Number(r.pages),
  }));
}

/** Bytes of telemetry_hot_times (the series of each hot sample time: hot samples' key). */
export async function hotTimesSize(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ bytes: string }>(
    `SELECT pg_total_relation_size('telemetry_hot_times')::bigint AS bytes`,
  );
  return Number(rows[0]?.bytes ?? 0);
}

/** Hot rows, counted. */
export async function countHotSamples(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM telemetry_samples');
  return Number(rows[0]?.n ?? 0);
}

/** Per UTC day (ms of its midnight), the samples and blocks of its compacted chunks. */
export async function compactedByDay(pool: Pool): Promise<Map<number, { samples: number; blocks: number }>> {
  const { rows } = await pool.query<{ day: string; samples: string; blocks: string }>(
    `SELECT to_char(chunk_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
            coalesce(sum(samples), 0)::bigint AS samples, coalesce(sum(blocks), 0)::bigint AS blocks
     FROM telemetry_chunks WHERE compacted_at IS NOT NULL GROUP BY 1`,
  );
  return new Map(
    rows.map((r) => [
      Date.parse(`${r.day}T00:00:00Z`),
      { samples: Number(r.samples), blocks: Number(r.blocks) },
    ]),
  );
}

/** The stored series: how many, and their table's total size. */
export async function seriesSize(pool: Pool): Promise<{ count: number; bytes: number }> {
  const { rows } = await pool.query<{ n: string; bytes: string }>(
    `SELECT (SELECT count(*) FROM telemetry_series) AS n,
            pg_total_relation_size('telemetry_series')::bigint AS bytes`,
  );
  return { count: Number(rows[0]?.n ?? 0), bytes: Number(rows[0]?.bytes ?? 0) };
}
