import { copyIn } from '@gpu-telemetry/db';
import type { Pool, PoolClient } from 'pg';
import {
  readBinaryCopy,
  readCopyStream,
  readInt8,
  readTimestamp,
  writeInt8Field,
  writeTimestampField,
} from './binary-copy';

/** A chunk of time, its bounds in ms since the epoch. */
export interface ChunkBounds {
  start: number;
  end: number;
}

/** Closed chunks not yet compacted: ended at or before `closedBefore`, oldest first. */
export async function chunksToCompact(pool: Pool, closedBefore: Date): Promise<ChunkBounds[]> {
  const { rows } = await pool.query<{ chunk_start: Date; chunk_end: Date }>(
    `SELECT chunk_start, chunk_end FROM telemetry_chunks
     WHERE compacted_at IS NULL AND chunk_end <= $1 ORDER BY chunk_start`,
    [closedBefore],
  );
  return rows.map((r) => ({ start: r.chunk_start.getTime(), end: r.chunk_end.getTime() }));
}

/** The daily partitions a chunk's blocks and rollups go to. */
export async function ensureChunkDays(db: Pool | PoolClient, chunkStart: number): Promise<void> {
  await db.query(
    `SELECT telemetry_ensure_day(t, ($1::timestamptz AT TIME ZONE 'UTC')::date)
     FROM unnest(ARRAY['telemetry_blocks', 'telemetry_rollups_1m', 'telemetry_rollups_1h']) AS t`,
    [new Date(chunkStart)],
  );
}

/**
 * Claims the chunk for this transaction, so only one streamer works on it and late samples wait
 * (pg_advisory_xact_lock on the chunk's minute); `wait` false gives up at once if someone holds it.
 */
export async function lockChunk(client: PoolClient, chunkStart: number, wait: boolean): Promise<boolean> {
  const key = Math.floor(chunkStart / 60_000);
  if (wait) {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('telemetry_chunk'), $1)`, [key]);
    return true;
  }
  const { rows } = await client.query<{ locked: boolean }>(
    `SELECT pg_try_advisory_xact_lock(hashtext('telemetry_chunk'), $1) AS locked`,
    [key],
  );
  return rows[0]?.locked ?? false;
}

/**
 * Whether the chunk has been compacted (as this transaction sees it now); null when it is no
 * longer there (merged into its closed chunk's row, or dropped by retention).
 */
export async function isCompacted(client: PoolClient, chunkStart: number): Promise<boolean | null> {
  const { rows } = await client.query<{ done: boolean }>(
    'SELECT compacted_at IS NOT NULL AS done FROM telemetry_chunks WHERE chunk_start = $1',
    [new Date(chunkStart)],
  );
  return rows[0]?.done ?? null;
}

/** Compacted slices of one closed chunk, to be merged into one row per series. */
export interface SliceGroup {
  /** The slices' starts, ms since the epoch, oldest first. */
  starts: number[];
  /** From the first slice's start to the last one's end. */
  start: number;
  end: number;
}

/**
 * Closed chunks (each window of `chunkMs` from the epoch, ended at or before `closedBefore`) holding
 * more than one slice, every one compacted and its hot partition dropped, oldest first.
 */
export async function slicesToMerge(pool: Pool, chunkMs: number, closedBefore: Date): Promise<SliceGroup[]> {
  const { rows } = await pool.query<{ starts: Date[]; s: Date; e: Date }>(
    `WITH c AS (
       SELECT chunk_start, chunk_end, compacted_at,
              date_bin(make_interval(secs => $1), chunk_start, TIMESTAMPTZ 'epoch') AS w
       FROM telemetry_chunks)
     SELECT array_agg(chunk_start ORDER BY chunk_start) AS starts, min(chunk_start) AS s, max(chunk_end) AS e
     FROM c WHERE chunk_end <= w + make_interval(secs => $1)
     GROUP BY w
     HAVING count(*) > 1 AND bool_and(compacted_at IS NOT NULL)
        AND w + make_interval(secs => $1) <= $2
        AND bool_and(to_regclass(telemetry_chunk_partition(chunk_start)) IS NULL)
     ORDER BY w`,
    [chunkMs / 1000, closedBefore],
  );
  return rows.map((r) => ({
    starts: r.starts.map((d) => d.getTime()),
    start: r.s.getTime(),
    end: r.e.getTime(),
  }));
}

/**
 * The slices of [start, end) as this transaction sees them now, locked until commit: what a merge
 * replaces. Null unless they are exactly `starts`, all compacted.
 */
export async function lockSlices(client: PoolClient, group: SliceGroup): Promise<{ exact: boolean } | null> {
  const { rows } = await client.query<{ chunk_start: Date; done: boolean; exact: boolean }>(
    `SELECT chunk_start, compacted_at IS NOT NULL AS done, exact_rollups AS exact FROM telemetry_chunks
     WHERE chunk_start >= $1 AND chunk_end <= $2 ORDER BY chunk_start FOR UPDATE`,
    [new Date(group.start), new Date(group.end)],
  );
  const same =
    rows.length === group.starts.length &&
    rows.every((r, i) => r.done && r.chunk_start.getTime() === group.starts[i]);
  return same ? { exact: rows.every((r) => r.exact) } : null;
}

const timestamps = (ms: readonly number[]) =>
  `ARRAY[${ms.map((t) => `'${new Date(t).toISOString()}'`).join(', ')}]::timestamptz[]`;

/** The range of series ids with blocks in these chunks. */
export async function blockSeriesRange(
  client: PoolClient,
  starts: readonly number[],
): Promise<[number, number] | null> {
  return seriesRange(client, `telemetry_blocks WHERE chunk_start = ANY(${timestamps(starts)})`);
}

/** The lowest and highest series_id of `rows` (a table, and a condition); null when there are none. */
async function seriesRange(client: PoolClient, rows: string): Promise<[number, number] | null> {
  const { rows: found } = await client.query<{ lo: string | null; hi: string | null }>(
    `SELECT min(series_id) AS lo, max(series_id) AS hi FROM ${rows}`,
  );
  const { lo, hi } = found[0] ?? { lo: null, hi: null };
  return lo === null || hi === null ? null : [Number(lo), Number(hi)];
}

/**
 * Streams the blocks of series [fromId, toId] in these chunks, in (series, chunk) order, by binary
 * COPY; `data` is only valid during the call.
 */
export async function readSliceBlocks(
  client: PoolClient,
  starts: readonly number[],
  fromId: number,
  toId: number,
  each: (seriesId: number, data: Buffer) => void,
): Promise<number> {
  return readBinaryCopy(
    client,
    `COPY (SELECT series_id, data FROM telemetry_blocks
           WHERE chunk_start = ANY(${timestamps(starts)})
             AND series_id BETWEEN ${Math.trunc(fromId)} AND ${Math.trunc(toId)}
           ORDER BY series_id, chunk_start) TO STDOUT (FORMAT binary)`,
    (buf, fields) => {
      const at = fields[2] as number;
      each(readInt8(buf, fields[0] as number), buf.subarray(at, at + (fields[3] as number)));
    },
  );
}

/** Deletes the rows of series [fromId, toId] that start at one of `starts` from a table of rows per series. */
export async function deleteSeriesRows(
  client: PoolClient,
  table: SeriesTable,
  starts: readonly number[],
  fromId: number,
  toId: number,
): Promise<void> {
  const column = table === 'telemetry_blocks' ? 'chunk_start' : 'start';
  await client.query(
    `DELETE FROM ${table} WHERE ${column} = ANY(${timestamps(starts)}) AND series_id BETWEEN $1 AND $2`,
    [fromId, toId],
  );
}

/**
 * Replaces the slices' rows with the merged chunk's row, unless a slice was made since they were
 * locked in a gap among them (for a late sample; telemetry_ensure_chunks makes one holding the
 * 'telemetry_partitions' lock, which this takes too, so what it sees is settled), or that lock is
 * held right now: then false, and the caller rolls back, to merge next round (once such a slice
 * is compacted too).
 */
export async function replaceSlices(
  client: PoolClient,
  group: SliceGroup,
  merged: { exact: boolean; samples: number; blocks: number },
): Promise<boolean> {
  // Tried, not waited for: retention holds it while its drops wait for the tables this
  // transaction has written, and waiting here would close the circle.
  const { rows: locked } = await client.query<{ ok: boolean }>(
    `SELECT pg_try_advisory_xact_lock(hashtext('telemetry_partitions')) AS ok`,
  );
  if (!locked[0]?.ok) return false;
  const { rows } = await client.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM telemetry_chunks WHERE chunk_start < $2 AND chunk_end > $1',
    [new Date(group.start), new Date(group.end)],
  );
  if (rows[0]?.n !== group.starts.length) return false;
  await client.query(`DELETE FROM telemetry_chunks WHERE chunk_start = ANY(${timestamps(group.starts)})`);
  await client.query(
    `INSERT INTO telemetry_chunks (chunk_start, chunk_end, compacted_at, exact_rollups, samples, blocks)
     VALUES ($1, $2, now(), $3, $4, $5)`,
    [new Date(group.start), new Date(group.end), merged.exact, merged.samples, merged.blocks],
  );
  return true;
}

/**
 * Stops new samples going into the chunk's hot partition and waits for the ones being written:
 * what the transaction then reads is all the chunk will ever hold there.
 */
export async function freezeHotChunk(client: PoolClient, chunkStart: number): Promise<void> {
  const { rows } = await client.query<{ part: string }>('SELECT telemetry_chunk_partition($1) AS part', [
    new Date(chunkStart),
  ]);
  await client.query(`LOCK TABLE ${quoteIdent(rows[0]?.part as string)} IN EXCLUSIVE MODE`);
}

/** The range of series ids with samples in the chunk's hot partition. */
export async function hotSeriesRange(
  client: PoolClient,
  chunkStart: number,
): Promise<[number, number] | null> {
  return seriesRange(client, quoteIdent(await partitionOf(client, chunkStart)));
}

/**
 * Streams the chunk's hot samples of series [fromId, toId] in (series, time) order to `each`, by
 * binary COPY: times arrive as microseconds, values as the exact doubles stored.
 */
export async function readHotSamples(
  client: PoolClient,
  chunkStart: number,
  fromId: number,
  toId: number,
  each: (seriesId: number, us: number, value: number) => void,
): Promise<number> {
  const part = await partitionOf(client, chunkStart);
  let rows = 0;
  await readCopyStream(
    client,
    `COPY (SELECT series_id::int8, ts, telemetry_value(value, value_dec) FROM ${quoteIdent(part)}
           WHERE series_id BETWEEN ${Math.trunc(fromId)} AND ${Math.trunc(toId)}
           ORDER BY series_id, ts) TO STDOUT (FORMAT binary)`,
    (buf, at) => {
      // A row: field count (2), then three fields of length (4) + 8 bytes: 38 bytes, no nulls.
      while (buf.length - at >= 2) {
        if (buf.readInt16BE(at) === -1) return -1;
        if (buf.length - at < 38) break;
        each(readInt8(buf, at + 6), readTimestamp(buf, at + 18), buf.readDoubleBE(at + 30));
        rows++;
        at += 38;
      }
      return at;
    },
  );
  return rows;
}

/** Where rows of a series over a span of time go: blocks (with their sample count) or rollups. */
export type SeriesTable =
  'telemetry_blocks' | 'telemetry_rollups_1m' | 'telemetry_rollups_1h' | typeof FOLD_SCRATCH;

/** A row of one of those tables: a series, the start of its span, its encoded data. */
export interface SeriesRow {
  seriesId: number;
  /** Start of the span (chunk or day), ms since the epoch. */
  start: number;
  n?: number;
  data: Uint8Array;
}

/** Stores rows by binary COPY (blocks: series_id, chunk_start, n, data; rollups: series_id, start, data). */
export async function copySeriesRows(
  client: PoolClient,
  table: SeriesTable,
  rows: SeriesRow[],
): Promise<void> {
  if (rows.length === 0) return;
  const blocks = table === 'telemetry_blocks';
  await copyIn(
    client,
    blocks ? 'telemetry_blocks (series_id, chunk_start, n, data)' : `${table} (series_id, start, data)`,
    seriesRowChunks(rows, blocks),
    'binary',
  );
}

/** The rows as tuples of COPY's binary format, ~256 KiB a chunk, each made when the COPY is ready for it. */
function* seriesRowChunks(rows: SeriesRow[], blocks: boolean): Generator<Buffer> {
  let out: Buffer[] = [];
  let size = 0;
  for (const row of rows) {
    const fixed = blocks ? 38 : 30;
    const buf = Buffer.alloc(fixed + row.data.length);
    buf.writeInt16BE(blocks ? 4 : 3, 0);
    writeTimestampField(buf, writeInt8Field(buf, 2, row.seriesId), row.start * 1000);
    if (blocks) {
      buf.writeInt32BE(4, 26);
      buf.writeInt32BE(row.n ?? 0, 30);
    }
    buf.writeInt32BE(row.data.length, fixed - 4);
    buf.set(row.data, fixed);
    out.push(buf);
    size += buf.length;
    if (size > 256 * 1024) {
      yield Buffer.concat(out, size);
      out = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(out, size);
}

/** Writes rollup rows over the ones with the same series and start (or as new ones). */
export async function upsertRollups(
  client: PoolClient,
  table: 'telemetry_rollups_1m' | 'telemetry_rollups_1h',
  rows: SeriesRow[],
): Promise<void> {
  if (rows.length === 0) return;
  await client.query(
    `INSERT INTO ${table} (series_id, start, data)
     SELECT s, t, d FROM unnest($1::bigint[], $2::timestamptz[], $3::bytea[]) AS x(s, t, d)
     ON CONFLICT (series_id, start) DO UPDATE SET data = excluded.data`,
    [
      rows.map((r) => r.seriesId),
      rows.map((r) => new Date(r.start)),
      rows.map((r) => Buffer.from(r.data.buffer, r.data.byteOffset, r.data.byteLength)),
    ],
  );
}

/** Holds the 1-hour rollups of a UTC day for this transaction (folding it, or writing into it). */
export async function lockRollupDay(client: PoolClient, dayStart: number): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock(hashtext('telemetry_rollup_day'), $1)`, [
    Math.floor(dayStart / 86_400_000),
  ]);
}

export async function isDayFolded(client: PoolClient, dayStart: number): Promise<boolean> {
  const { rows } = await client.query('SELECT 1 FROM telemetry_rollup_days WHERE day = $1::date', [
    new Date(dayStart).toISOString().slice(0, 10),
  ]);
  return rows.length > 0;
}

/** Days whose 1-hour rollups can be folded (closed before `closedBefore`, all compacted), oldest first. */
export async function daysToFold(pool: Pool, closedBefore: Date): Promise<number[]> {
  const { rows } = await pool.query<{ day: string }>(
    `SELECT to_char(day, 'YYYY-MM-DD') AS day FROM telemetry_days_to_fold($1) AS day`,
    [closedBefore],
  );
  return rows.map((r) => Date.parse(`${r.day}T00:00:00Z`));
}

/** The day's 1-hour rollup partition. */
function rollupDayPartition(dayStart: number): string {
  return `telemetry_rollups_1h_${new Date(dayStart).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

/**
 * The id that ends a step of `count` stored series beginning at `fromId` (the count-th id from it
 * in telemetry_series), or null when fewer are left.
 */
export async function seriesStepEnd(
  client: PoolClient,
  fromId: number,
  count: number,
): Promise<number | null> {
  const { rows } = await client.query<{ id: string }>(
    'SELECT id FROM telemetry_series WHERE id >= $1 ORDER BY id OFFSET $2 LIMIT 1',
    [fromId, count - 1],
  );
  return rows[0] ? Number(rows[0].id) : null;
}

/** The lowest and highest series id in a day's 1-hour rollups; null when it has none. */
export async function rollupDaySeriesRange(
  client: PoolClient,
  dayStart: number,
): Promise<[number, number] | null> {
  return seriesRange(client, quoteIdent(rollupDayPartition(dayStart)));
}

/** Streams the day's 1-hour rollup rows of series [fromId, toId] to `each`, in (series, start) order. */
export async function readRollupDay(
  client: PoolClient,
  dayStart: number,
  fromId: number,
  toId: number,
  each: (row: SeriesRow) => void,
): Promise<void> {
  await readBinaryCopy(
    client,
    `COPY (SELECT series_id, start, data FROM ${quoteIdent(rollupDayPartition(dayStart))}
           WHERE series_id BETWEEN ${Math.trunc(fromId)} AND ${Math.trunc(toId)}
           ORDER BY series_id, start) TO STDOUT (FORMAT binary)`,
    (buf, fields) => {
      const data = fields[4] as number;
      each({
        seriesId: readInt8(buf, fields[0] as number),
        start: readTimestamp(buf, fields[2] as number) / 1000,
        data: buf.subarray(data, data + (fields[5] as number)),
      });
    },
  );
}

/**
 * Where a day's folded rows wait, a step of series at a time, until they replace the day's rows
 * (see replaceRollupDay): a temporary table, dropped at commit.
 */
export const FOLD_SCRATCH = 'telemetry_fold_scratch';

export async function createFoldScratch(client: PoolClient): Promise<void> {
  await client.query(
    `CREATE TEMPORARY TABLE ${FOLD_SCRATCH} (series_id bigint, start timestamptz, data bytea) ON COMMIT DROP`,
  );
}

/** Replaces the day's 1-hour rollups with the folded rows in FOLD_SCRATCH and records the day as folded. */
export async function replaceRollupDay(client: PoolClient, dayStart: number): Promise<void> {
  const part = rollupDayPartition(dayStart);
  await client.query(`TRUNCATE ${quoteIdent(part)}`);
  await client.query(
    `INSERT INTO telemetry_rollups_1h (series_id, start, data) SELECT series_id, start, data FROM ${FOLD_SCRATCH} ORDER BY series_id`,
  );
  await client.query('INSERT INTO telemetry_rollup_days (day) VALUES ($1::date) ON CONFLICT DO NOTHING', [
    new Date(dayStart).toISOString().slice(0, 10),
  ]);
  await advanceEpoch(client);
}

/** The blocks of these series in chunks starting within [from, to), in chunk order. */
export async function blocksBetween(
  client: PoolClient,
  seriesIds: number[],
  from: number,
  to: number,
): Promise<{ seriesId: number; data: Buffer }[]> {
  const { rows } = await client.query<{ series_id: string; data: Buffer }>(
    `SELECT series_id, data FROM telemetry_blocks
     WHERE series_id = ANY($1::bigint[]) AND chunk_start >= $2 AND chunk_start < $3
     ORDER BY series_id, chunk_start`,
    [seriesIds, new Date(from), new Date(to)],
  );
  return rows.map((r) => ({ seriesId: Number(r.series_id), data: r.data }));
}

/** Drops whole days of a rollup table that end at or before `before`. */
export async function dropRollupDays(
  pool: Pool,
  table: 'telemetry_rollups_1m' | 'telemetry_rollups_1h',
  before: Date,
): Promise<number> {
  // A chunk whose 1-hour rollups may be gone no longer says they stand for its samples (PromQL
  // then reads its blocks): chunks of the days dropped, those that end at or before `before`.
  // Cleared first, in its own statement, so no query sees the flag without the rows; and again
  // after, for a chunk compacted in between. Chunks kept longer than their rollups happen where
  // TELEMETRY_RETENTION is longer than TELEMETRY_RETENTION_1H, or 0.
  const unmark = () =>
    pool.query(
      `UPDATE telemetry_chunks SET exact_rollups = false
       WHERE exact_rollups AND chunk_start < date_trunc('day', $1::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`,
      [before],
    );
  if (table === 'telemetry_rollups_1h') await unmark();
  const { rows } = await pool.query<{ day: string }>('SELECT telemetry_drop_days($1, $2)::text AS day', [
    table,
    before,
  ]);
  if (table === 'telemetry_rollups_1h' && rows.length > 0) {
    await pool.query('DELETE FROM telemetry_rollup_days WHERE day = ANY($1::date[])', [
      rows.map((r) => r.day),
    ]);
    await unmark();
  }
  return rows.length;
}

/**
 * Records the chunk as compacted, its 1-hour rollups made with edges (exact_rollups), and empties
 * its hot partition; the partition then refuses rows
 * (a writer that was waiting on it gets check_violation and looks again), and is dropped later.
 */
export async function finishCompaction(
  client: PoolClient,
  chunkStart: number,
  stats: { samples: number; blocks: number },
): Promise<void> {
  const part = await partitionOf(client, chunkStart);
  await client.query(
    'UPDATE telemetry_chunks SET compacted_at = now(), exact_rollups = true, samples = $2, blocks = $3 WHERE chunk_start = $1',
    [new Date(chunkStart), stats.samples, stats.blocks],
  );
  await client.query(`TRUNCATE ${quoteIdent(part)}`);
  await client.query(
    `ALTER TABLE ${quoteIdent(part)} ADD CONSTRAINT ${quoteIdent(`${part}_compacted`)} CHECK (false) NOT VALID`,
  );
  await advanceEpoch(client);
}

/**
 * Moves telemetry_epoch, in a transaction that empties a table by TRUNCATE: a PromQL query whose
 * snapshot is older sees the counter moved once done, and is evaluated again. It is the last
 * statement before COMMIT (where in the transaction makes no difference to readers), so the row
 * lock is never held while waiting for anything: retention's drops, which hold their tables'
 * locks, move it too.
 */
async function advanceEpoch(client: PoolClient): Promise<void> {
  await client.query('UPDATE telemetry_epoch SET n = n + 1');
}

/** Blocks of these series in one chunk (to merge late samples into), locked until commit. */
export async function blocksForUpdate(
  client: PoolClient,
  chunkStart: number,
  seriesIds: number[],
): Promise<{ seriesId: number; data: Buffer }[]> {
  const { rows } = await client.query<{ series_id: string; data: Buffer }>(
    `SELECT series_id, data FROM telemetry_blocks
     WHERE chunk_start = $1 AND series_id = ANY($2::bigint[]) FOR UPDATE`,
    [new Date(chunkStart), seriesIds],
  );
  return rows.map((r) => ({ seriesId: Number(r.series_id), data: r.data }));
}

/** Writes merged blocks over the old ones (or as new ones), and counts the added samples. */
export async function upsertBlocks(
  client: PoolClient,
  chunkStart: number,
  blocks: SeriesRow[],
  added: number,
): Promise<void> {
  if (blocks.length === 0) return;
  await client.query(
    `INSERT INTO telemetry_blocks (series_id, chunk_start, n, data)
     SELECT s, $1, n, d FROM unnest($2::bigint[], $3::int[], $4::bytea[]) AS x(s, n, d)
     ON CONFLICT (series_id, chunk_start) DO UPDATE SET n = excluded.n, data = excluded.data`,
    [
      new Date(chunkStart),
      blocks.map((b) => b.seriesId),
      blocks.map((b) => b.n ?? 0),
      blocks.map((b) => Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)),
    ],
  );
  await client.query(
    `UPDATE telemetry_chunks SET samples = samples + $2,
       blocks = (SELECT count(*) FROM telemetry_blocks WHERE chunk_start = $1) WHERE chunk_start = $1`,
    [new Date(chunkStart), added],
  );
}

/** Drops emptied hot partitions of compacted chunks that nobody is using; returns how many. */
export async function dropCompactedPartitions(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ dropped: number }>(
    'SELECT telemetry_drop_compacted_partitions() AS dropped',
  );
  return rows[0]?.dropped ?? 0;
}

async function partitionOf(client: PoolClient, chunkStart: number): Promise<string> {
  const { rows } = await client.query<{ part: string }>('SELECT telemetry_chunk_partition($1) AS part', [
    new Date(chunkStart),
  ]);
  return rows[0]?.part as string;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
