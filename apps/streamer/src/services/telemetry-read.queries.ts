import type { GpuFields } from '@gpu-telemetry/model';
import { type Kysely, sql } from 'kysely';
import type { PoolClient } from 'pg';
import { idArray, readBinaryCopy, readInt8, readTimestamp, tsLiteral } from './binary-copy';
import type { StreamerDatabase } from '../streamer.database';
import { POW10 } from './hot-value';
import { pgTimestamp } from './sample-time';

type Db = Kysely<StreamerDatabase>;

export interface GpuRow {
  gpuId: string;
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  firstSeen: Date;
  lastSeen: Date;
  metrics: string[];
}

/** GPUs in id order after `after`, optionally on one host. */
export async function listGpus(
  db: Db,
  options: { limit: number; after?: string; hostname?: string },
): Promise<GpuRow[]> {
  let query = db.selectFrom('gpus').selectAll().orderBy('gpu_id').limit(options.limit);
  if (options.after !== undefined) query = query.where('gpu_id', '>', options.after);
  if (options.hostname !== undefined) query = query.where('hostname', '=', options.hostname);
  const rows = await query.execute();
  return rows.map((row) => ({
    gpuId: row.gpu_id,
    gpuIndex: row.gpu_index,
    device: row.device,
    modelName: row.model_name,
    hostname: row.hostname,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    metrics: row.metrics,
  }));
}

export async function gpuExists(db: Db, gpuId: string): Promise<boolean> {
  const row = await db.selectFrom('gpus').select('gpu_id').where('gpu_id', '=', gpuId).executeTakeFirst();
  return row !== undefined;
}

export interface SeriesRow extends GpuFields {
  id: number;
  key: string;
  metricName: string;
  labels: Record<string, string>;
}

/**
 * The series of one GPU, optionally of one metric, seen since `seenSince` (a series keeps its row
 * for days past the longest retention: a GPU whose jobs change daily has thousands).
 */
export async function seriesOfGpu(
  db: Db,
  gpuId: string,
  metric: string | undefined,
  seenSince: Date,
): Promise<SeriesRow[]> {
  let query = db
    .selectFrom('telemetry_series')
    .select([
      'id',
      'key',
      'metric_name',
      'gpu_index',
      'device',
      'model_name',
      'hostname',
      'container',
      'pod',
      'namespace',
      'labels',
    ])
    .where('gpu_id', '=', gpuId)
    .where('last_seen', '>=', seenSince)
    .orderBy('id');
  if (metric !== undefined) query = query.where('metric_name', '=', metric);
  const rows = await query.execute();
  return rows.map((row) => ({
    id: Number(row.id),
    key: row.key,
    metricName: row.metric_name,
    gpuIndex: row.gpu_index,
    device: row.device,
    modelName: row.model_name,
    hostname: row.hostname,
    container: row.container,
    pod: row.pod,
    namespace: row.namespace,
    labels: row.labels,
  }));
}

/** The ids of every GPU series of a metric, optionally only those on one host or of one GPU model. */
export async function seriesOfMetric(
  db: Db,
  metric: string,
  filter: { hostname?: string; model?: string; seenSince?: Date },
): Promise<number[]> {
  // GPU series only: a remote-written series of the same name that names no GPU is not a GPU's.
  let query = db
    .selectFrom('telemetry_series')
    .select('id')
    .where('metric_name', '=', metric)
    .where('gpu_id', 'is not', null);
  if (filter.seenSince !== undefined) query = query.where('last_seen', '>=', filter.seenSince);
  if (filter.hostname !== undefined) query = query.where('hostname', '=', filter.hostname);
  if (filter.model !== undefined) query = query.where('model_name', '=', filter.model);
  return (await query.execute()).map((row) => Number(row.id));
}

/** A sample as read back: its series, its time in microseconds since the epoch, its value. */
export interface StoredSample {
  seriesId: number;
  us: number;
  value: number;
}

/** A position in (time, series) order: samples after it come next. */
export interface SampleKey {
  us: number;
  seriesId: number;
}

/** One series' samples of one compacted chunk, still encoded. */
export interface StoredBlock {
  seriesId: number;
  chunkStartUs: number;
  data: Buffer;
}

/** Microseconds since the epoch as a timestamptz, exactly (to_timestamp goes through a double). */
const atMicros = (us: number) =>
  sql<Date>`(TIMESTAMPTZ 'epoch' + ${String(us)}::bigint * INTERVAL '1 microsecond')`;

/**
 * The makings of one page of samples of these series in [start, end) after `after`, read in one
 * statement so hot rows and blocks come from one snapshot (a chunk compacted meanwhile is seen
 * either hot or compacted, never both, never neither). Hot rows: the first `limit` in (time,
 * series) order. Blocks: those of the chunk where the page starts, then of as many following
 * chunks as it takes to hold `limit` samples; `more` says whether blocks were left out. Samples
 * of the first chunk before the page and of the last after `end` are for the caller to drop.
 */
export async function samplesPage(
  db: Db,
  args: { seriesIds: number[]; startUs: number; endUs: number; after?: SampleKey; limit: number },
): Promise<{ hot: StoredSample[]; blocks: StoredBlock[]; more: boolean }> {
  const after = args.after
    ? sql`AND (ts, series_id) > (${atMicros(args.after.us)}, ${args.after.seriesId})`
    : sql``;
  // The bounds go as text with their microseconds: the parameter takes the column's type, and
  // the planner prunes partitions by it.
  const start = pgTimestamp(args.startUs);
  const end = pgTimestamp(args.endUs);
  const from = args.after ? atMicros(Math.max(args.after.us, args.startUs)) : sql`${start}::timestamptz`;
  const { rows } = await sql<{
    kind: 'h' | 'b' | 'm';
    series_id: string | null;
    us: string | null;
    value: number | null;
    data: Buffer | null;
  }>`
    WITH hot AS (
      SELECT series_id, (extract(epoch FROM ts) * 1000000)::bigint AS us, telemetry_value(value, value_dec) AS value
      FROM telemetry_samples
      WHERE series_id = ANY(${args.seriesIds}::int[]) AND ts >= ${start} AND ts < ${end} ${after}
      ORDER BY ts, series_id
      LIMIT ${args.limit}
    ), counted AS (
      SELECT b.series_id, b.chunk_start,
             sum(b.n) OVER (PARTITION BY b.chunk_start) AS in_chunk,
             sum(b.n) OVER (ORDER BY b.chunk_start) AS through_chunk,
             b.chunk_start = min(b.chunk_start) OVER () AS first
      FROM telemetry_blocks b
      JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
      WHERE b.series_id = ANY(${args.seriesIds}::bigint[]) AND b.chunk_start < ${end} AND c.chunk_end > ${from}
    ), chosen AS (
      SELECT series_id, chunk_start, first,
             through_chunk - in_chunk - coalesce(max(in_chunk) FILTER (WHERE first) OVER (), 0) < ${args.limit} AS wanted
      FROM counted
    )
    SELECT 'h' AS kind, series_id, us, value, NULL::bytea AS data FROM hot
    UNION ALL
    SELECT 'b', b.series_id, (extract(epoch FROM b.chunk_start) * 1000000)::bigint, NULL, b.data
    FROM chosen JOIN telemetry_blocks b USING (series_id, chunk_start)
    WHERE chosen.first OR chosen.wanted
    UNION ALL
    SELECT 'm', NULL, NULL, NULL, NULL WHERE EXISTS (SELECT 1 FROM chosen WHERE NOT first AND NOT wanted)
  `.execute(db);
  const hot: StoredSample[] = [];
  const blocks: StoredBlock[] = [];
  let more = false;
  for (const r of rows) {
    if (r.kind === 'h')
      hot.push({ seriesId: Number(r.series_id), us: Number(r.us), value: r.value as number });
    else if (r.kind === 'b')
      blocks.push({ seriesId: Number(r.series_id), chunkStartUs: Number(r.us), data: r.data as Buffer });
    else more = true;
  }
  return { hot, blocks, more };
}

export interface BucketRow {
  start: Date;
  count: number;
  /** The sum of the values below HUGE in magnitude (null: none). */
  sum: number | null;
  /** The sum of the others, each times 1/HUGE (null: none): see HUGE. */
  huge: number | null;
  min: number | null;
  max: number | null;
}

/**
 * 2^960: values at least this large are summed apart, scaled by 1/HUGE (exactly, a power of two),
 * so no sum overflows a double (Postgres raises on it): 2^64 values below it cannot reach the
 * largest double, nor can 2^64 scaled ones (each below 2^64). Normal values take the plain sum.
 */
export const HUGE = 2 ** 960;

/** A stretch of time [from, to) (µs) answered at one resolution: raw samples, 1-minute or 1-hour rollups. */
export interface Segment {
  from: number;
  to: number;
  resolution: 0 | 60 | 3600;
}

/**
 * Where each rollup resolution begins (ms): the first day its retention has kept. Before it, only
 * finer data can answer (raw samples are kept longer than rollups when TELEMETRY_RETENTION is
 * longer than TELEMETRY_RETENTION_1M or _1H). Infinity: none is stored.
 */
export interface RollupHorizons {
  60: number;
  3600: number;
}

/** One series' rollup buckets over a chunk or a day, still encoded. */
export interface StoredRollup {
  seriesId: number;
  resolution: 60 | 3600;
  data: Buffer;
}

/**
 * The first day (µs) of the oldest daily partition of the table named by the SQL text expression
 * `table`, from the catalog; null when it has none. An expression, for statements of the REST and
 * PromQL reads alike.
 */
export const oldestDayUs = (table: string) =>
  `(SELECT (extract(epoch FROM min(to_date(right(c.relname, 8), 'YYYYMMDD'))::timestamp AT TIME ZONE 'UTC') * 1000000)::bigint
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = ${table}::regclass)`;

/**
 * Where each rollup resolution begins (ms): the first day of its table's oldest daily partition,
 * from the catalog (retention drops whole days, so every day from it on is kept); Infinity for a
 * table with none.
 */
export async function rollupHorizons(db: Db): Promise<RollupHorizons> {
  const { rows } = await sql<{ table: string; us: string | null }>`
    SELECT t AS table, ${sql.raw(oldestDayUs('t'))} AS us
    FROM unnest(ARRAY['telemetry_rollups_1m', 'telemetry_rollups_1h']) AS t`.execute(db);
  const of = (table: string) => {
    const us = rows.find((r) => r.table === table)?.us;
    return us == null ? Infinity : Number(us) / 1000;
  };
  return { 60: of('telemetry_rollups_1m'), 3600: of('telemetry_rollups_1h') };
}

/** Sets the statement timeout of the transaction `trx` is in (at least 1 ms). */
export async function setStatementTimeout(trx: Db, timeoutMs: number): Promise<void> {
  await sql`SELECT set_config('statement_timeout', ${String(Math.max(1, Math.ceil(timeoutMs)))}, true)`.execute(
    trx,
  );
}

/**
 * How many samples one series has, on average, in the compacted chunks that the raw segments
 * reach (each chunk's samples over its blocks): what an aggregate decodes for every series it
 * reads there. Hot rows are summed by Postgres and cost the streamer nothing.
 */
export async function compactedSamplesPerSeries(db: Db, segments: Segment[]): Promise<number> {
  const raw = segments.filter((g) => g.resolution === 0);
  if (raw.length === 0) return 0;
  const overlaps = sql.join(
    raw.map((g) => sql`(chunk_start < ${pgTimestamp(g.to)} AND chunk_end > ${pgTimestamp(g.from)})`),
    sql` OR `,
  );
  const { rows } = await sql<{ n: number | null }>`
    SELECT sum(samples::float8 / greatest(blocks, 1)) AS n FROM telemetry_chunks
    WHERE compacted_at IS NOT NULL AND (${overlaps})`.execute(db);
  return Number(rows[0]?.n ?? 0);
}

/**
 * For aggregates over [start, end), in one statement (one snapshot), on a connection of the pool
 * (by binary COPY: rollup rows and blocks as their bytes, not as hex text twice their size, which
 * the driver turned back into bytes, a string per row on the way): count/sum/min/max of the
 * finite hot values of these series per `stepSeconds` bucket (aligned to the epoch), and what the
 * compacted chunks hold for each segment: blocks where it is raw, rollup rows where it is 1m or 1h.
 * Rollup rows may reach outside their segment: the caller keeps the buckets inside.
 */
export async function bucketMakings(
  client: PoolClient,
  args: { seriesIds: number[]; startUs: number; endUs: number; stepSeconds: number; segments: Segment[] },
): Promise<{ hot: BucketRow[]; blocks: StoredBlock[]; rollups: StoredRollup[] }> {
  if (!Number.isFinite(args.stepSeconds) || args.stepSeconds <= 0)
    throw new RangeError(`not a step: ${args.stepSeconds}`);
  const ids = idArray(args.seriesIds);
  const of = (resolution: 0 | 60 | 3600) => args.segments.filter((g) => g.resolution === resolution);
  // Hot rows are aggregated as stored, by bucket and by places: a decimal's mantissas are summed
  // and compared as integers (the extremes divided once per group give the doubles their rows
  // hold; the sum, divided once, is the exact sum rounded once), doubles as doubles. Reading each
  // row through telemetry_value() instead cost a division and a lookup per row and aggregate.
  // Hot rows' series ids are 4 bytes: an int[] lets Postgres hash the list (a bigint[] cannot be).
  const tens = `'{${POW10.join(',')}}'::float8[]`;
  // Doubles at least HUGE in magnitude are summed apart, scaled (see HUGE): a plain float8 sum
  // raises on overflow, and a numeric one costs every row. Constants, folded once by the planner.
  const huge = `power(2::float8, ${Math.log2(HUGE)})`;
  const tiny = `power(2::float8, ${-Math.log2(HUGE)})`;
  const parts = [
    `SELECT 1::int2 AS kind, bucket, sum(n)::bigint AS count, sum(s) AS sum, sum(h) AS huge, min(lo) AS min, max(hi) AS max,
            NULL::bigint AS series_id, NULL::bytea AS data
     FROM (SELECT date_bin(make_interval(secs => ${String(args.stepSeconds)}), ts, TIMESTAMPTZ 'epoch') AS bucket,
                  count(*) AS n,
                  coalesce(sum(value) FILTER (WHERE abs(value) < ${huge}),
                           sum(value_dec >> 4)::float8 / (${tens})[(value_dec & 15) + 1]) AS s,
                  sum(value * ${tiny}) FILTER (WHERE abs(value) >= ${huge}) AS h,
                  coalesce(min(value), (min(value_dec) >> 4)::float8 / (${tens})[(value_dec & 15) + 1]) AS lo,
                  coalesce(max(value), (max(value_dec) >> 4)::float8 / (${tens})[(value_dec & 15) + 1]) AS hi
           FROM telemetry_samples
           WHERE series_id = ANY(${idArray(args.seriesIds, 'int')})
             AND ts >= ${tsLiteral(args.startUs)} AND ts < ${tsLiteral(args.endUs)}
             AND (value_dec IS NOT NULL OR (value > '-Infinity' AND value < 'Infinity'))
           GROUP BY 1, value_dec & 15) AS by_places
     GROUP BY bucket`,
  ];
  const raw = of(0);
  if (raw.length > 0) {
    const overlaps = raw
      .map((g) => `(b.chunk_start < ${tsLiteral(g.to)} AND c.chunk_end > ${tsLiteral(g.from)})`)
      .join(' OR ');
    parts.push(`SELECT 2::int2, NULL, NULL, NULL, NULL, NULL, NULL, b.series_id, b.data
     FROM telemetry_blocks b JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
     WHERE b.series_id = ANY(${ids}) AND (${overlaps})`);
  }
  for (const [resolution, table, kind] of [
    [60, 'telemetry_rollups_1m', 3],
    [3600, 'telemetry_rollups_1h', 4],
  ] as const) {
    const segments = of(resolution);
    if (segments.length === 0) continue;
    // A row starts at its chunk or day: one that starts up to a day before a segment can reach into it.
    const overlaps = segments
      .map((g) => `(r.start < ${tsLiteral(g.to)} AND r.start > ${tsLiteral(g.from)} - INTERVAL '1 day')`)
      .join(' OR ');
    parts.push(`SELECT ${kind}::int2, NULL, NULL, NULL, NULL, NULL, NULL, r.series_id, r.data
     FROM ${table} r WHERE r.series_id = ANY(${ids}) AND (${overlaps})`);
  }
  const hot: BucketRow[] = [];
  const blocks: StoredBlock[] = [];
  const rollups: StoredRollup[] = [];
  const double = (buf: Buffer, fields: Int32Array, f: number) =>
    (fields[2 * f + 1] as number) < 0 ? null : buf.readDoubleBE(fields[2 * f] as number);
  await readBinaryCopy(
    client,
    `COPY (${parts.join(' UNION ALL ')}) TO STDOUT (FORMAT binary)`,
    (buf, fields) => {
      const kind = buf.readInt16BE(fields[0] as number);
      if (kind === 1) {
        hot.push({
          start: new Date(readTimestamp(buf, fields[2] as number) / 1000),
          count: readInt8(buf, fields[4] as number),
          sum: double(buf, fields, 3),
          huge: double(buf, fields, 4),
          min: double(buf, fields, 5),
          max: double(buf, fields, 6),
        });
        return;
      }
      const seriesId = readInt8(buf, fields[14] as number);
      // The stream's buffers are not written to once handed over: the bytes are kept as they came.
      const data = buf.subarray(fields[16] as number, (fields[16] as number) + (fields[17] as number));
      if (kind === 2) blocks.push({ seriesId, chunkStartUs: 0, data });
      else rollups.push({ seriesId, resolution: kind === 3 ? 60 : 3600, data });
    },
  );
  return { hot, blocks, rollups };
}
