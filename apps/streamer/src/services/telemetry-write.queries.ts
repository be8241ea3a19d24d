import { copyIn } from '@gpu-telemetry/db';
import type { GpuFields, MetricMetadata } from '@gpu-telemetry/model';
import type { Pool, PoolClient } from 'pg';
import { writeTimestampField } from './binary-copy';
import { decimalOf } from './hot-value';

/** Narrow hot rows, column by column: samples of stored series. */
export interface HotRows {
  seriesIds: number[];
  /** Microseconds since the Unix epoch. */
  us: number[];
  values: number[];
}

/** A series as stored: its metric, its GPU columns (null where it names no GPU), its labels. */
export interface SeriesLabels extends GpuFields {
  metricName: string;
  gpuId: string | null;
  /** The labels that are not a GPU column (all of them when the series names no GPU). */
  labels: Record<string, string>;
  /** The whole label set, __name__ apart: exactly as sent, or made from a scrape's GPU columns. */
  promLabels: Record<string, string>;
  /**
   * Identified by metric and label set (sent as labels: remote write), not by GPU columns and
   * labels (a scrape made by the collector, keyed so since before label sets were kept).
   */
  byLabelSet: boolean;
}

/** How old last_seen may grow before resolving a series refreshes it. */
const SEEN_REFRESH = '1 day';

/** The ids of series asked for, in order, and how many of them this call stored. */
export interface ResolvedSeries {
  ids: number[];
  created: number;
}

/**
 * The ids of these series, in order, stored first where new. The key is computed in SQL
 * (telemetry_series_key), so every streamer and the migrations agree on it. A series another
 * streamer is storing at the same moment is not visible to this statement's snapshot: those are
 * asked again once it has committed. An id handed out has last_seen within the last day.
 */
export async function resolveSeries(
  pool: Pool | PoolClient,
  series: SeriesLabels[],
): Promise<ResolvedSeries> {
  const ids: number[] = new Array(series.length);
  let created = 0;
  let pending = series.map((_, i) => i);
  for (let attempt = 0; pending.length > 0; attempt++) {
    if (attempt === 5) throw new Error(`could not resolve ${pending.length} series`);
    const input = pending.map((o) => {
      const s = series[o] as SeriesLabels;
      return {
        o,
        m: s.metricName,
        g: s.gpuId,
        i: s.gpuIndex,
        d: s.device,
        mo: s.modelName,
        h: s.hostname,
        c: s.container,
        p: s.pod,
        n: s.namespace,
        l: s.labels,
        pl: s.promLabels,
        k: s.byLabelSet,
      };
    });
    const { rows } = await pool.query<{ o: number; id: string | null; stale: boolean; created: boolean }>({
      name: 'telemetry_series_resolve',
      text: `WITH input AS (
          SELECT x.o,
                 CASE WHEN x.k THEN telemetry_series_key(x.m, x.pl)
                      ELSE telemetry_series_key(x.m, x.g, x.i, x.d, x.mo, x.h, x.c, x.p, x.n, x.l) END AS key,
                 x.m, x.g, x.i, x.d, x.mo, x.h, x.c, x.p, x.n, x.l, x.pl
          FROM jsonb_to_recordset($1::jsonb) AS x(o int, m text, g text, i int, d text, mo text, h text,
                                                  c text, p text, n text, l jsonb, pl jsonb, k boolean)
        ), stored AS MATERIALIZED (
          SELECT input.o, input.key, s.id, s.last_seen
          FROM input LEFT JOIN telemetry_series s ON s.key = input.key
        ), inserted AS (
          -- Only keys not stored yet are offered: an insert that meets a conflict still draws an id,
          -- and ids drawn for nothing (every series, each time a cache starts over) would leave the
          -- live series' ids sparse.
          INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, device, model_name, hostname,
                                        container, pod, namespace, labels, prom_labels)
          SELECT DISTINCT ON (input.key) input.key, m, g, i, d, mo, h, c, p, n, l, pl
          FROM input JOIN stored USING (o)
          WHERE stored.id IS NULL
          ORDER BY input.key -- one lock order for every writer
          ON CONFLICT (key) DO NOTHING
          RETURNING id, key
        )
        SELECT stored.o, coalesce(inserted.id, stored.id) AS id,
               inserted.id IS NULL AND stored.last_seen < now() - interval '${SEEN_REFRESH}' AS stale,
               inserted.id IS NOT NULL AS created
        FROM stored
        LEFT JOIN inserted ON inserted.key = stored.key`,
      values: [JSON.stringify(input)],
    });
    pending = [];
    const stale = new Map<number, number[]>();
    for (const row of rows) {
      if (row.created) created++;
      if (row.id === null) pending.push(row.o);
      else if (row.stale) {
        const id = Number(row.id);
        stale.set(id, [...(stale.get(id) ?? []), row.o]);
      } else ids[row.o] = Number(row.id);
    }
    if (stale.size > 0) {
      // Seen again after a day: refreshed, unless the series was deleted meanwhile (not seen
      // for longer than every retention), in which case it is stored anew on the next attempt.
      const { rows: refreshed } = await pool.query<{ id: string }>(
        `UPDATE telemetry_series SET last_seen = now() WHERE id = ANY($1::bigint[]) RETURNING id`,
        [[...stale.keys()]],
      );
      const kept = new Set(refreshed.map((r) => Number(r.id)));
      for (const [id, os] of stale) {
        for (const o of os) {
          if (kept.has(id)) ids[o] = id;
          else pending.push(o);
        }
      }
    }
  }
  return { ids, created };
}

/**
 * Moves the label index's pending entries (the series stored since the last flush) into the index
 * in one bulk pass, which costs far less than inserting them one series at a time (migration
 * 0021), and leaves searches no pending list to read. Only the index's owner may: a role that is
 * not gets insufficient_privilege (42501), and the list is left to the inserts that find it past
 * its 256 kB and to autovacuum.
 */
export async function flushLabelIndex(pool: Pool | PoolClient): Promise<void> {
  await pool.query({
    name: 'telemetry_label_index_flush',
    text: `SELECT gin_clean_pending_list('telemetry_series_labels_idx'::regclass)`,
  });
}

/** A chunk of time: its hot samples live in their own partition until it is compacted. */
export interface Chunk {
  start: number;
  end: number;
  compacted: boolean;
}

/** The chunks holding these times (ms), created with their partitions where missing. */
export async function ensureChunks(
  pool: Pool | PoolClient,
  times: number[],
  chunkMs: number,
): Promise<Chunk[]> {
  const { rows } = await pool.query<{ chunk_start: Date; chunk_end: Date; compacted: boolean }>(
    `SELECT chunk_start, chunk_end, compacted_at IS NOT NULL AS compacted
     FROM telemetry_ensure_chunks($1::timestamptz[], $2)`,
    [times.map((t) => new Date(t).toISOString()), Math.round(chunkMs / 1000)],
  );
  return rows.map((r) => ({
    start: r.chunk_start.getTime(),
    end: r.chunk_end.getTime(),
    compacted: r.compacted,
  }));
}

/** Drops the chunks that ended at or before `before`, with their samples; returns their starts. */
export async function dropChunks(pool: Pool, before: Date): Promise<Date[]> {
  const { rows } = await pool.query<{ start: Date }>('SELECT telemetry_drop_chunks($1) AS start', [before]);
  return rows.map((r) => r.start);
}

/** Deletes the GPUs not seen since `before`. */
export async function deleteGpusNotSeenSince(pool: Pool, before: Date): Promise<number> {
  const { rowCount } = await pool.query('DELETE FROM gpus WHERE last_seen < $1', [before]);
  return rowCount ?? 0;
}

/**
 * Deletes the series not seen for `ageMs` (by the database's clock, which also sets last_seen),
 * up to `limit` of them; returns how many. The condition is checked again on the row deleted, so
 * a series refreshed meanwhile stays.
 */
export async function deleteSeriesNotSeenFor(pool: Pool, ageMs: number, limit: number): Promise<number> {
  const { rowCount } = await pool.query(
    `WITH cutoff AS (SELECT now() - make_interval(secs => $1::float8 / 1000) AS at)
     DELETE FROM telemetry_series
     WHERE id IN (SELECT id FROM telemetry_series, cutoff WHERE last_seen < cutoff.at LIMIT $2)
       AND last_seen < (SELECT at FROM cutoff)`,
    [ageMs, limit],
  );
  return rowCount ?? 0;
}

/**
 * Stores what exporters said of these metrics (the last word wins), in name order so that
 * streamers writing the same names never deadlock; returns how many rows changed.
 */
export async function upsertMetadata(client: Pool | PoolClient, entries: MetricMetadata[]): Promise<number> {
  if (entries.length === 0) return 0;
  const sorted = [...entries].sort((a, b) => (a.metric < b.metric ? -1 : a.metric > b.metric ? 1 : 0));
  const { rowCount } = await client.query(
    `INSERT INTO telemetry_metadata AS t (metric_name, type, help, unit)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
     ON CONFLICT (metric_name) DO UPDATE
       SET type = excluded.type, help = excluded.help, unit = excluded.unit, updated_at = now()
       WHERE (t.type, t.help, t.unit) IS DISTINCT FROM (excluded.type, excluded.help, excluded.unit)`,
    [
      sorted.map((e) => e.metric),
      sorted.map((e) => e.type),
      sorted.map((e) => e.help),
      sorted.map((e) => e.unit),
    ],
  );
  return rowCount ?? 0;
}

/** The most bytes a hot row takes in COPY's binary format: a field count, then four fields with their lengths. */
const HOT_TUPLE_MAX = 2 + (4 + 4) + 4 + (4 + 8) + (4 + 8);

/**
 * The rows (series_id, value_dec, ts, value) in COPY's binary format, 1000 a chunk, each chunk
 * made only when the COPY is ready for it. Binary rows ask Postgres to parse no text, and the
 * streamer to format none: measured here, a third of the CPU of text rows on both sides. A value
 * goes as its 4-byte decimal where that holds it exactly (hot-value.ts: a 40-byte row), else as
 * the exact double, NaN and ±Infinity included; times as microseconds.
 */
export function* hotCopyChunks(rows: HotRows): Generator<Buffer> {
  const CHUNK = 1000;
  const { seriesIds, us: times, values } = rows;
  for (let i = 0; i < seriesIds.length; i += CHUNK) {
    const end = Math.min(seriesIds.length, i + CHUNK);
    const buf = Buffer.allocUnsafe((end - i) * HOT_TUPLE_MAX);
    let p = 0;
    for (let j = i; j < end; j++) {
      const value = values[j] as number;
      const decimal = decimalOf(value);
      buf.writeInt16BE(4, p);
      buf.writeInt32BE(4, p + 2);
      buf.writeInt32BE(seriesIds[j] as number, p + 6);
      if (decimal === undefined) {
        buf.writeInt32BE(-1, p + 10);
        p = writeTimestampField(buf, p + 14, times[j] as number);
        buf.writeInt32BE(8, p);
        buf.writeDoubleBE(value, p + 4);
        p += 12;
      } else {
        buf.writeInt32BE(4, p + 10);
        buf.writeInt32BE(decimal, p + 14);
        p = writeTimestampField(buf, p + 18, times[j] as number);
        buf.writeInt32BE(-1, p);
        p += 4;
      }
    }
    yield buf.subarray(0, p);
  }
}

/** The columns hotCopyChunks writes, for COPY. */
export const HOT_COPY_COLUMNS = 'telemetry_samples (series_id, value_dec, ts, value)';

/**
 * Hot samples by binary COPY, inside the caller's transaction (after claimHotTimes has kept only
 * new ones); returns how many were stored.
 */
export async function copyHotSamples(client: PoolClient, rows: HotRows): Promise<number> {
  return copyIn(client, HOT_COPY_COLUMNS, hotCopyChunks(rows), 'binary');
}

const AT_US = `TIMESTAMPTZ 'epoch' + x.us * INTERVAL '1 microsecond'`;

/** Rows of telemetry_hot_times, column by column, in (time, group) order. */
export interface HotTimes {
  /** Microseconds since the Unix epoch. */
  us: number[];
  /** Each row's group of series (telemetry_hot_group). */
  groups: number[];
  /** encodeIdSet of the group's series with a sample at the time. */
  sets: Buffer[];
}

/** How claimHotTimes and lockHotTimes name a (sample time in µs, group) row. */
export function hotTimeKey(us: number | string, group: number): string {
  return `${us}/${group}`;
}

/**
 * Claims (sample time, group) rows for the batch about to be stored hot: each one not held yet
 * is written with its set of series and returned, as its hotTimeKey. A row another transaction
 * is claiming waits for it to end; rows go in (time, group) order, so two writers never
 * deadlock. The rows not returned are held already: see lockHotTimes.
 */
export async function claimHotTimes(client: PoolClient, claims: HotTimes): Promise<Set<string>> {
  const { rows } = await client.query<{ us: string; grp: number }>({
    name: 'telemetry_hot_times_claim',
    text: `INSERT INTO telemetry_hot_times (ts, grp, series)
           SELECT ${AT_US}, x.grp, x.series
           FROM unnest($1::bigint[], $2::int[], $3::bytea[]) WITH ORDINALITY AS x(us, grp, series, i)
           ORDER BY x.i
           ON CONFLICT (ts, grp) DO NOTHING
           RETURNING (extract(epoch FROM ts) * 1000000)::bigint AS us, grp`,
    values: [claims.us, claims.groups, claims.sets],
  });
  return new Set(rows.map((r) => hotTimeKey(r.us, r.grp)));
}

/**
 * The stored sets of these (sample time, group) rows, locked until commit, in (time, group)
 * order; by hotTimeKey.
 */
export async function lockHotTimes(
  client: PoolClient,
  held: Pick<HotTimes, 'us' | 'groups'>,
): Promise<Map<string, Buffer>> {
  const { rows } = await client.query<{ us: string; grp: number; series: Buffer }>({
    name: 'telemetry_hot_times_lock',
    text: `SELECT x.us, x.grp, h.series
           FROM telemetry_hot_times h
           JOIN unnest($1::bigint[], $2::int[]) AS x(us, grp) ON h.ts = ${AT_US} AND h.grp = x.grp
           ORDER BY h.ts, h.grp FOR UPDATE OF h`,
    values: [held.us, held.groups],
  });
  return new Map(rows.map((r) => [hotTimeKey(r.us, r.grp), r.series]));
}

/** Writes the series sets of these (sample time, group) rows, in (time, group) order. */
export async function writeHotTimes(client: PoolClient, rows: HotTimes): Promise<void> {
  if (rows.us.length === 0) return;
  await client.query({
    name: 'telemetry_hot_times_write',
    text: `INSERT INTO telemetry_hot_times (ts, grp, series)
           SELECT ${AT_US}, x.grp, x.series FROM unnest($1::bigint[], $2::int[], $3::bytea[]) AS x(us, grp, series)
           ON CONFLICT (ts, grp) DO UPDATE SET series = excluded.series`,
    values: [rows.us, rows.groups, rows.sets],
  });
}

/**
 * Forgets the sample times no hot chunk holds: those before the oldest chunk not compacted yet
 * (a sample sent again for a compacted chunk is merged into its block, which keeps it once; one
 * for a chunk dropped by retention is refused). Rows are locked in time order, as writers lock
 * them, so this never deadlocks with one. Returns how many were forgotten.
 */
export async function forgetColdHotTimes(pool: Pool): Promise<number> {
  const { rowCount } = await pool.query(
    `DELETE FROM telemetry_hot_times WHERE (ts, grp) IN (
       SELECT ts, grp FROM telemetry_hot_times
       WHERE ts < coalesce((SELECT min(chunk_start) FROM telemetry_chunks WHERE compacted_at IS NULL), 'infinity')
       ORDER BY ts, grp FOR UPDATE)`,
  );
  return rowCount ?? 0;
}

/** A stale marker: the series ended at this time. */
export interface StaleMarker {
  seriesId: number;
  /** RFC 3339. */
  timestamp: string;
}

/** Stores stale markers, each once; returns how many were new. */
export async function insertStaleMarkers(pool: Pool | PoolClient, markers: StaleMarker[]): Promise<number> {
  if (markers.length === 0) return 0;
  const result = await pool.query({
    name: 'telemetry_stale_insert',
    text: `INSERT INTO telemetry_stale (series_id, ts)
           SELECT s, t FROM unnest($1::bigint[], $2::timestamptz[]) AS x(s, t)
           ON CONFLICT DO NOTHING`,
    values: [markers.map((m) => m.seriesId), markers.map((m) => m.timestamp)],
  });
  return result.rowCount ?? 0;
}

/** Deletes the stale markers older than `before` (retention). */
export async function deleteStaleMarkersBefore(pool: Pool, before: Date): Promise<number> {
  const { rowCount } = await pool.query('DELETE FROM telemetry_stale WHERE ts < $1', [before]);
  return rowCount ?? 0;
}

export interface GpuSighting {
  gpuId: string;
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  firstSeen: string;
  lastSeen: string;
  /** Metric names seen; empty when the stored list already has them all (nothing to add). */
  metrics: string[];
}

/**
 * Keeps `gpus` current: one row per GPU, updated only when something moved. A sighting without
 * metric names leaves the stored list alone, without reading it. Returns the GPUs whose stored
 * list is empty after the statement: sent without names, they had no row (retention deleted it),
 * so the caller sends them again with their names.
 */
export async function upsertGpus(pool: Pool | PoolClient, gpus: GpuSighting[]): Promise<string[]> {
  if (gpus.length === 0) return [];
  const { rows } = await pool.query<{ gpu_id: string; unlisted: boolean }>({
    name: 'gpus_upsert',
    text: `INSERT INTO gpus AS g (gpu_id, gpu_index, device, model_name, hostname, first_seen, last_seen, metrics)
      SELECT x."gpuId", x."gpuIndex", x.device, x."modelName", x.hostname, x."firstSeen", x."lastSeen", x.metrics
      FROM jsonb_to_recordset($1::jsonb) AS x("gpuId" text, "gpuIndex" int, device text, "modelName" text, hostname text,
                                              "firstSeen" timestamptz, "lastSeen" timestamptz, metrics text[])
      ORDER BY x."gpuId" -- one lock order for every writer: concurrent batches never deadlock
      ON CONFLICT (gpu_id) DO UPDATE SET
        gpu_index = coalesce(excluded.gpu_index, g.gpu_index),
        device = coalesce(excluded.device, g.device),
        model_name = coalesce(excluded.model_name, g.model_name),
        hostname = coalesce(excluded.hostname, g.hostname),
        first_seen = least(g.first_seen, excluded.first_seen),
        last_seen = greatest(g.last_seen, excluded.last_seen),
        metrics = CASE WHEN cardinality(excluded.metrics) = 0 OR excluded.metrics <@ g.metrics THEN g.metrics
                       ELSE ARRAY(SELECT DISTINCT m FROM unnest(g.metrics || excluded.metrics) AS m ORDER BY m) END
      WHERE excluded.last_seen > g.last_seen OR excluded.first_seen < g.first_seen
         OR (cardinality(excluded.metrics) > 0 AND NOT excluded.metrics <@ g.metrics)
      RETURNING gpu_id, cardinality(metrics) = 0 AS unlisted`,
    values: [JSON.stringify(gpus)],
  });
  return rows.filter((row) => row.unlisted).map((row) => row.gpu_id);
}
