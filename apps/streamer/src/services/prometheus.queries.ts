import type { Pool, PoolClient } from 'pg';
import {
  arrayLength,
  forEachElement,
  idArray,
  readBinaryCopy,
  readInt8,
  readTimestamp,
  tsLiteral,
} from './binary-copy';
import { pgTimestamp } from './sample-time';
import { oldestDayUs } from './telemetry-read.queries';

/**
 * The read side of PromQL: every statement runs on one connection inside one read-only
 * REPEATABLE READ transaction (beginSnapshot), so all the selectors of a query see the same
 * series, hot rows and blocks, and a chunk compacted meanwhile is seen either hot or compacted.
 */

/** A stored series: its id, metric and label set (`prom_labels`: every label as sent, __name__ apart). */
export interface StoredSeries {
  id: number;
  metricName: string;
  labels: Record<string, string>;
}

/** How many of the newest chunks a snapshot reads as it opens (see beginSnapshot). */
export const SNAPSHOT_CHUNKS = 256;

/** What a query's snapshot reads as it opens: see beginSnapshot. */
export interface Snapshot {
  epoch: number;
  rawHorizonUs: number | null;
  chunks: ChunkSpan[];
  allChunks: boolean;
}

/**
 * What the planner is told starting parallel workers costs a query's reads (Postgres's default:
 * 1,000). A panel's read of a thousand series' hot rows (~50,000) was planned in parallel: each
 * worker sorted and grouped its share, and the leader merged them and joined their arrays, in
 * 81-101 ms, where one process hashing the rows took 30-49 (docs/performance.md). Ten times the
 * default keeps parallel plans for reads of millions of rows, where the workers pay for themselves.
 */
const PARALLEL_SETUP_COST = 10_000;

/**
 * Opens the snapshot every later statement of the query reads; statements end by `timeoutMs`.
 * Returns telemetry_epoch as the snapshot sees it; where raw samples begin: the start (µs) of the
 * oldest chunk stored, hot or compacted (before it, past TELEMETRY_RETENTION, only rollups are
 * left; null when no chunk is stored); and the newest SNAPSHOT_CHUNKS chunks in time order
 * (`allChunks`: that is every chunk), from which a query over recent time knows what to read
 * without asking again.
 */
export async function beginSnapshot(client: PoolClient, timeoutMs: number): Promise<Snapshot> {
  // One round trip: six statements in one simple query (no parameters), answered in order.
  const results = (await client.query(
    `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
     SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(timeoutMs))};
     SET LOCAL parallel_setup_cost = ${PARALLEL_SETUP_COST};
     SELECT n FROM telemetry_epoch;
     SELECT (extract(epoch FROM min(chunk_start)) * 1000000)::bigint AS us FROM telemetry_chunks;
     SELECT ${CHUNK_COLUMNS} FROM telemetry_chunks ORDER BY chunk_start DESC LIMIT ${SNAPSHOT_CHUNKS}`,
  )) as unknown as { rows: Record<string, string | boolean | null>[] }[];
  const us = results[4]?.rows[0]?.['us'];
  const newest = (results[5]?.rows ?? []) as unknown as ChunkRow[];
  return {
    epoch: Number(results[3]?.rows[0]?.['n'] ?? 0),
    rawHorizonUs: us == null ? null : Number(us),
    chunks: newest.map(toChunkSpan).reverse(),
    allChunks: newest.length < SNAPSHOT_CHUNKS,
  };
}

/**
 * telemetry_epoch: moved by every commit that empties a table by TRUNCATE (a compaction, a day
 * fold). Read in a query's snapshot and again once it is done: if it moved, a table the query read
 * may have looked empty to it (TRUNCATE is not MVCC-safe), and the query is evaluated again.
 */
export async function currentEpoch(client: Pool | PoolClient): Promise<number> {
  const { rows } = await client.query<{ n: string }>({
    name: 'telemetry_epoch',
    text: 'SELECT n FROM telemetry_epoch',
  });
  return Number(rows[0]?.n ?? 0);
}

/** Ends the snapshot; returns telemetry_epoch as it is now, read just after (in the same round trip). */
export async function endSnapshot(client: PoolClient): Promise<number> {
  const results = (await client.query('COMMIT; SELECT n FROM telemetry_epoch')) as unknown as {
    rows: { n: string }[];
  }[];
  return Number(results[1]?.rows[0]?.n ?? 0);
}

/**
 * Every metric name, from telemetry_series_name_idx one name at a time (a loose index scan):
 * as many index probes as there are names, however many series each has.
 */
export async function metricNames(client: PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>({
    name: 'promql_metric_names',
    text: `WITH RECURSIVE names AS (
        (SELECT metric_name AS name FROM telemetry_series ORDER BY metric_name LIMIT 1)
        UNION ALL
        SELECT (SELECT s.metric_name FROM telemetry_series s WHERE s.metric_name > names.name
                ORDER BY s.metric_name LIMIT 1)
        FROM names WHERE names.name IS NOT NULL
      )
      SELECT name FROM names WHERE name IS NOT NULL`,
  });
  return rows.map((r) => r.name);
}

interface SeriesRowData {
  id: string;
  metric_name: string;
  prom_labels: Record<string, string>;
}

const SERIES_COLUMNS = 'id, metric_name, prom_labels';

const toStoredSeries = (r: SeriesRowData): StoredSeries => ({
  id: Number(r.id),
  metricName: r.metric_name,
  labels: r.prom_labels,
});

/**
 * Up to `limit` series of these metrics (of every metric when `names` is null) with ids above
 * `afterId`, in id order: a selector reads its candidates in keyset batches, so it can stop at
 * its series cap without having read them all.
 */
export async function seriesBatch(
  client: PoolClient,
  args: {
    names: string[] | null;
    /**
     * Label sets of which a series must contain one (`prom_labels @>`), found through the label
     * index; null for no such condition.
     */
    containing: Record<string, string>[] | null;
    afterId: number;
    limit: number;
  },
): Promise<StoredSeries[]> {
  // One statement for each shape, so each plan keeps the index its conditions can use.
  const where: string[] = [];
  const values: unknown[] = [];
  if (args.names !== null) {
    values.push(args.names);
    where.push(`metric_name = ANY($${values.length}::text[])`);
  }
  if (args.containing !== null) {
    values.push(args.containing.map((labels) => JSON.stringify(labels)));
    where.push(`prom_labels @> ANY($${values.length}::jsonb[])`);
  }
  values.push(args.afterId, args.limit);
  where.push(`id > $${values.length - 1}`);
  // Label sets are planned with their values each time (an unnamed statement): a prepared plan
  // cannot tell one GPU's labels from a label every series has, and would read every series of
  // the metric to check them.
  const { rows } = await client.query<SeriesRowData>({
    ...(args.containing === null ? { name: `promql_series${args.names === null ? '' : '_of_names'}` } : {}),
    text: `SELECT ${SERIES_COLUMNS} FROM telemetry_series WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${values.length}`,
    values,
  });
  return rows.map(toStoredSeries);
}

/** What readSamples hands over for one series. */
export interface SampleReader {
  /** Its hot samples in the range, in time order (values: the 8 stored bytes, NaN bits kept). */
  hot?: (seriesId: number, piece: { times: Float64Array; values: Float64Array }) => void;
  /** Its blocks, in chunk order (kept: copied out of the stream's buffer). */
  blocks?: (seriesId: number, blocks: Buffer[]) => void;
  /** The times (µs) of its stale markers in the range. */
  stale?: (seriesId: number, timesUs: Float64Array) => void;
}

/**
 * The stored samples of these series in [fromUs, toUs), by one binary COPY (one round trip):
 * hot rows (when `each.hot`), blocks of the chunks overlapping the range (`each.blocks`; only
 * those starting at one of `chunkStartsUs`, when given) and stale markers (`each.stale`), one
 * row per series and kind, each aggregated in Postgres (a binary COPY row is a message and a
 * stream chunk of its own, costlier here than the sample it carries). Values are the 8 stored
 * bytes, so a staleness marker keeps its bits (a NaN read through JavaScript numbers may not).
 */
export async function readSamples(
  client: PoolClient,
  args: { seriesIds: readonly number[]; fromUs: number; toUs: number; chunkStartsUs?: readonly number[] },
  each: SampleReader,
): Promise<number> {
  const ids = idArray(args.seriesIds);
  const from = tsLiteral(args.fromUs);
  const to = tsLiteral(args.toUs);
  const parts: string[] = [];
  if (each.hot) {
    // In the order found (a series' rows come in the order written, nearly always time order),
    // put in time order here: ordered aggregates make Postgres sort every row read at once.
    parts.push(`SELECT 1::int2, series_id::int8, array_agg(ts), array_agg(telemetry_value(value, value_dec)), NULL::bytea[]
           FROM telemetry_samples WHERE series_id = ANY(${idArray(args.seriesIds, 'int')}) AND ts >= ${from} AND ts < ${to}
           GROUP BY series_id`);
  }
  if (each.blocks && args.chunkStartsUs?.length !== 0) {
    const chunks = args.chunkStartsUs
      ? `AND b.chunk_start = ANY(ARRAY[${args.chunkStartsUs.map(tsLiteral).join(', ')}]::timestamptz[])`
      : '';
    parts.push(`SELECT 2::int2, b.series_id, NULL::timestamptz[], NULL::float8[], array_agg(b.data ORDER BY b.chunk_start)
           FROM telemetry_blocks b JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
           WHERE b.series_id = ANY(${ids}) AND b.chunk_start < ${to} AND c.chunk_end > ${from} ${chunks}
           GROUP BY b.series_id`);
  }
  if (each.stale) {
    parts.push(`SELECT 3::int2, series_id, array_agg(ts ORDER BY ts), NULL::float8[], NULL::bytea[]
           FROM telemetry_stale WHERE series_id = ANY(${ids}) AND ts >= ${from} AND ts < ${to}
           GROUP BY series_id`);
  }
  if (parts.length === 0) return 0;
  return readBinaryCopy(
    client,
    `COPY (${parts.join(' UNION ALL ')}) TO STDOUT (FORMAT binary)`,
    (buf, fields) => {
      const kind = buf.readInt16BE(fields[0] as number);
      const seriesId = readInt8(buf, fields[2] as number);
      if (kind === 2) {
        const at = fields[8] as number;
        // One copy of the row's blocks: the stream's buffer is not ours to keep.
        const row = Buffer.from(buf.subarray(at, at + (fields[9] as number)));
        const blocks: Buffer[] = [];
        forEachElement(row, 0, (offset, len) => blocks.push(row.subarray(offset, offset + len)));
        each.blocks?.(seriesId, blocks);
        return;
      }
      const times = new Float64Array(arrayLength(buf, fields[4] as number));
      let i = 0;
      forEachElement(buf, fields[4] as number, (at) => {
        times[i++] = readTimestamp(buf, at);
      });
      if (kind === 3) {
        each.stale?.(seriesId, times);
        return;
      }
      const values = new Float64Array(times.length);
      const words = new Uint32Array(values.buffer);
      i = 0;
      forEachElement(buf, fields[6] as number, (at) => {
        words[2 * i] = buf.readUInt32BE(at + 4);
        words[2 * i + 1] = buf.readUInt32BE(at);
        i++;
      });
      inTimeOrder(times, values);
      each.hot?.(seriesId, { times, values });
    },
  );
}

/**
 * Puts a series' samples in time order, in place; values keep their bits (a staleness marker's
 * NaN included). Samples read by one process come in order and cost one pass. A parallel scan
 * interleaves its workers' rows (each worker's in order) as they reach the leader, so a series'
 * samples come in runs of a few: runs are merged pairwise, as a natural merge sort does. A
 * thousand series of 76 samples in ~23 runs take ~4 ms, where sorting indexes and copying values
 * as BigInts took ~22.
 */
export function inTimeOrder(times: Float64Array, values: Float64Array): void {
  const n = times.length;
  let bounds = [0];
  for (let i = 1; i < n; i++) if ((times[i - 1] as number) > (times[i] as number)) bounds.push(i);
  if (bounds.length === 1) return;
  bounds.push(n);
  // A value moves as its two 32-bit words: read as a number, a NaN may lose its payload.
  const words = new Uint32Array(values.buffer, values.byteOffset, 2 * n);
  let fromT: Float64Array = times;
  let fromW: Uint32Array = words;
  let toT: Float64Array = new Float64Array(n);
  let toW: Uint32Array = new Uint32Array(2 * n);
  const move = (from: number, to: number) => {
    toT[to] = fromT[from] as number;
    toW[2 * to] = fromW[2 * from] as number;
    toW[2 * to + 1] = fromW[2 * from + 1] as number;
  };
  while (bounds.length > 2) {
    const merged = [0];
    for (let r = 0; r < bounds.length - 1; r += 2) {
      const lo = bounds[r] as number;
      const mid = bounds[r + 1] as number;
      const hi = r + 2 < bounds.length ? (bounds[r + 2] as number) : mid;
      let i = lo;
      let j = mid;
      let k = lo;
      // Equal times keep their order: the left run's first.
      while (i < mid && j < hi) move((fromT[j] as number) < (fromT[i] as number) ? j++ : i++, k++);
      while (i < mid) move(i++, k++);
      while (j < hi) move(j++, k++);
      merged.push(hi);
    }
    [fromT, toT] = [toT, fromT];
    [fromW, toW] = [toW, fromW];
    bounds = merged;
  }
  if (fromT !== times) {
    times.set(fromT);
    words.set(fromW);
  }
}

/** A chunk of time, µs since the epoch, and whether it is compacted (blocks and rollups) or hot. */
export interface ChunkSpan {
  startUs: number;
  endUs: number;
  compacted: boolean;
  /** Whether its 1-hour rollups have edges (compacted since they do): see codec/rollup.ts. */
  exactRollups: boolean;
}

const CHUNK_COLUMNS = `(extract(epoch FROM chunk_start) * 1000000)::bigint AS s,
  (extract(epoch FROM chunk_end) * 1000000)::bigint AS e, compacted_at IS NOT NULL AS compacted, exact_rollups AS exact`;

interface ChunkRow {
  s: string;
  e: string;
  compacted: boolean;
  exact: boolean;
}

const toChunkSpan = (r: ChunkRow): ChunkSpan => ({
  startUs: Number(r.s),
  endUs: Number(r.e),
  compacted: r.compacted,
  exactRollups: r.compacted && r.exact,
});

/** The chunks overlapping [fromUs, toUs), in time order. */
export async function chunksIn(client: PoolClient, fromUs: number, toUs: number): Promise<ChunkSpan[]> {
  const { rows } = await client.query<ChunkRow>({
    name: 'promql_chunks_in',
    text: `SELECT ${CHUNK_COLUMNS} FROM telemetry_chunks WHERE chunk_start < $2 AND chunk_end > $1 ORDER BY chunk_start`,
    values: [pgTimestamp(fromUs), pgTimestamp(toUs)],
  });
  return rows.map(toChunkSpan);
}

/** Rollup tables, by bucket. */
export type RollupTable = 'telemetry_rollups_1m' | 'telemetry_rollups_1h';

/** The rollup rows of these series starting in [fromUs, toUs), by binary COPY (`data` as in readBlocks). */
export async function readRollupRows(
  client: PoolClient,
  args: { table: RollupTable; seriesIds: readonly number[]; fromUs: number; toUs: number },
  each: (seriesId: number, startUs: number, data: Buffer) => void,
): Promise<number> {
  return readBinaryCopy(
    client,
    `COPY (SELECT series_id, start, data FROM ${args.table}
           WHERE series_id = ANY(${idArray(args.seriesIds)})
             AND start >= ${tsLiteral(args.fromUs)} AND start < ${tsLiteral(args.toUs)}
           ORDER BY series_id, start) TO STDOUT (FORMAT binary)`,
    (buf, fields) => {
      const seriesId = readInt8(buf, fields[0] as number);
      const startUs = readTimestamp(buf, fields[2] as number);
      each(
        seriesId,
        startUs,
        buf.subarray(fields[4] as number, (fields[4] as number) + (fields[5] as number)),
      );
    },
  );
}

/** The first day (µs) of a rollup table's oldest daily partition, from the catalog; null when it has none. */
export async function oldestRollupDayUs(client: PoolClient, table: RollupTable): Promise<number | null> {
  const { rows } = await client.query<{ us: string | null }>({
    name: `promql_oldest_day_${table}`,
    text: `SELECT ${oldestDayUs('$1')} AS us`,
    values: [table],
  });
  return rows[0]?.us == null ? null : Number(rows[0].us);
}

/**
 * The ids among `seriesIds` with a sample (hot) or a block overlapping [from, to], or, before
 * `rawFrom` (where raw samples begin: see beginSnapshot), a rollup row that may: a row starts at
 * its chunk, or at its day once folded, so it counts from a day before `from` (as Prometheus
 * counts a block).
 */
export async function seriesWithDataBetween(
  client: PoolClient,
  args: { seriesIds: readonly number[]; from: Date; to: Date; rawFrom: Date | null },
): Promise<Set<number>> {
  const { rows } = await client.query<{ id: string }>({
    name: 'promql_series_with_data',
    text: `SELECT id FROM unnest($1::bigint[]) AS id
           WHERE EXISTS (SELECT 1 FROM telemetry_samples x WHERE x.series_id = id AND x.ts BETWEEN $2 AND $3)
              OR EXISTS (SELECT 1 FROM telemetry_blocks b JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
                         WHERE b.series_id = id AND b.chunk_start <= $3 AND c.chunk_end > $2)
              OR EXISTS (SELECT 1 FROM telemetry_rollups_1m r
                         WHERE r.series_id = id AND r.start <= $3 AND r.start > $2 - interval '1 day' AND r.start < $4)
              OR EXISTS (SELECT 1 FROM telemetry_rollups_1h r
                         WHERE r.series_id = id AND r.start <= $3 AND r.start > $2 - interval '1 day' AND r.start < $4)`,
    values: [args.seriesIds, args.from, args.to, args.rawFrom ?? 'infinity'],
  });
  return new Set(rows.map((r) => Number(r.id)));
}

/** The distinct names of telemetry_label_values, one index probe each (a loose index scan). */
const LABEL_NAMES = `WITH RECURSIVE names AS (
    (SELECT name FROM telemetry_label_values ORDER BY name LIMIT 1)
    UNION ALL
    SELECT (SELECT v.name FROM telemetry_label_values v WHERE v.name > names.name ORDER BY v.name LIMIT 1)
    FROM names WHERE names.name IS NOT NULL
  )`;

/**
 * Every label name of every series (__name__ included when there is a series), from
 * telemetry_label_values one name at a time (a loose index scan, as metricNames).
 */
export async function allLabelNames(client: PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>({
    name: 'promql_label_names',
    text: `${LABEL_NAMES}
      SELECT name FROM names WHERE name IS NOT NULL
      UNION ALL
      SELECT '__name__' WHERE (SELECT metric_name FROM telemetry_series ORDER BY metric_name LIMIT 1) IS NOT NULL`,
  });
  return rows.map((r) => r.name);
}

/** Every value of one label over every series (not __name__: see metricNames). */
export async function allLabelValues(client: PoolClient, name: string): Promise<string[]> {
  const { rows } = await client.query<{ value: string }>({
    name: 'promql_label_values',
    text: 'SELECT value FROM telemetry_label_values WHERE name = $1',
    values: [name],
  });
  return rows.map((r) => r.value);
}

/**
 * A series counts as seen since `sinceUs` when a streamer resolved it within a day before (its
 * last_seen is refreshed once a day old): the label lists asked for a range (Grafana's variables)
 * then leave out hosts and GPUs gone for longer, as Prometheus' head and blocks do.
 */
const SEEN_SLACK_US = 86_400_000_000;
const seenSince = (sinceUs: number) => pgTimestamp(sinceUs - SEEN_SLACK_US); // any start, clamped to years 1-9999

/** Metric names of the series seen since `sinceUs` (a loose index scan skipping the others). */
export async function metricNamesSince(client: PoolClient, sinceUs: number): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>({
    name: 'promql_metric_names_since',
    text: `WITH RECURSIVE names AS (
        (SELECT metric_name AS name FROM telemetry_series WHERE last_seen >= $1 ORDER BY metric_name LIMIT 1)
        UNION ALL
        SELECT (SELECT s.metric_name FROM telemetry_series s
                WHERE s.metric_name > names.name AND s.last_seen >= $1 ORDER BY s.metric_name LIMIT 1)
        FROM names WHERE names.name IS NOT NULL
      )
      SELECT name FROM names WHERE name IS NOT NULL`,
    values: [seenSince(sinceUs)],
  });
  return rows.map((r) => r.name);
}

/** Label names some series seen since `sinceUs` has (each name stops at its first such value). */
export async function labelNamesSince(client: PoolClient, sinceUs: number): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>({
    name: 'promql_label_names_since',
    text: `${LABEL_NAMES}
      SELECT n.name FROM names n
      WHERE n.name IS NOT NULL AND EXISTS (
        SELECT 1 FROM telemetry_label_values v
        WHERE v.name = n.name AND EXISTS (
          SELECT 1 FROM telemetry_series s
          WHERE s.prom_labels @> jsonb_build_object(v.name, v.value) AND s.last_seen >= $1))
      UNION ALL
      SELECT '__name__' WHERE EXISTS (SELECT 1 FROM telemetry_series WHERE last_seen >= $1)`,
    values: [seenSince(sinceUs)],
  });
  return rows.map((r) => r.name);
}

/** Values of one label over the series seen since `sinceUs` (not __name__: metricNamesSince). */
export async function labelValuesSince(client: PoolClient, name: string, sinceUs: number): Promise<string[]> {
  const { rows } = await client.query<{ value: string }>({
    name: 'promql_label_values_since',
    text: `SELECT v.value FROM telemetry_label_values v
           WHERE v.name = $1 AND EXISTS (
             SELECT 1 FROM telemetry_series s
             WHERE s.prom_labels @> jsonb_build_object(v.name, v.value) AND s.last_seen >= $2)`,
    values: [name, seenSince(sinceUs)],
  });
  return rows.map((r) => r.value);
}

/** A metric family's metadata, as /api/v1/metadata lists it. */
export interface StoredMetadata {
  type: string;
  help: string;
  unit: string;
}

/** The stored metadata by metric name (one metric, or all), in name order, at most `limit` metrics. */
export async function readMetadata(
  pool: Pool,
  args: { metric?: string; limit?: number },
): Promise<Map<string, StoredMetadata>> {
  const { rows } = await pool.query<{ metric_name: string } & StoredMetadata>(
    `SELECT metric_name, type, help, unit FROM telemetry_metadata
     WHERE $1::text IS NULL OR metric_name = $1
     ORDER BY metric_name LIMIT $2`,
    [args.metric ?? null, args.limit ?? null],
  );
  return new Map(rows.map((r) => [r.metric_name, { type: r.type, help: r.help, unit: r.unit }]));
}
