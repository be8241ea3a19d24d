import { isDependencyFailure, type Logger } from '@gpu-telemetry/service-kit';
import { inTransaction, onConnection, withTransaction } from '@gpu-telemetry/db';
import type { Pool, PoolClient } from 'pg';
import { type Block, decodeBlock, encodeBlock } from '../codec/block-codec';
import { combineRollups, decodeRollup, encodeRollup, HOUR_US, MINUTE_US, rollUp } from '../codec/rollup';
import {
  blocksBetween,
  blockSeriesRange,
  blocksForUpdate,
  type ChunkBounds,
  chunksToCompact,
  copySeriesRows,
  createFoldScratch,
  daysToFold,
  deleteSeriesRows,
  ensureChunkDays,
  finishCompaction,
  FOLD_SCRATCH,
  freezeHotChunk,
  hotSeriesRange,
  isCompacted,
  isDayFolded,
  lockChunk,
  lockRollupDay,
  lockSlices,
  readHotSamples,
  readRollupDay,
  readSliceBlocks,
  replaceRollupDay,
  replaceSlices,
  rollupDaySeriesRange,
  type SeriesRow,
  seriesStepEnd,
  type SliceGroup,
  slicesToMerge,
  upsertBlocks,
  upsertRollups,
} from './compaction.queries';
import type { StreamerMetrics } from './streamer.metrics';

export interface CompactorDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  /** A chunk is compacted once it has been closed this long (TELEMETRY_COMPACT_AFTER). */
  compactAfterMs: number;
  /**
   * TELEMETRY_CHUNK. Hot samples are kept in slices of it (TELEMETRY_SLICE), each compacted on its
   * own; once the whole chunk is closed and compacted, its slices are merged (see mergeDue).
   */
  chunkMs?: number;
  /**
   * Age of the oldest telemetry message not yet consumed (0 when none; undefined when the queue
   * cannot say). Chunks that ended after it was published wait: its samples would otherwise all
   * arrive late. While the queue cannot say, the backlog it last reported has only aged.
   */
  backlogAgeMs?: () => Promise<number | undefined>;
  now?: () => number;
  /** Series read and written per step of a chunk's compaction, to bound memory. */
  seriesPerStep?: number;
  /** Series refolded at once when late samples reach a folded day (each decoded for the whole day). */
  refoldSeries?: number;
}

/**
 * The compacted chunk a late sample was routed to is gone: merged into its closed chunk's row (or
 * dropped) meanwhile. Nothing was written; the caller looks the chunk up again.
 */
export class ChunkMovedError extends Error {
  constructor(readonly chunkStart: number) {
    super(`chunk ${new Date(chunkStart).toISOString()} was merged or dropped meanwhile`);
    this.name = 'ChunkMovedError';
  }
}

/** A sample on its way into a compacted chunk. */
export interface LateSample {
  seriesId: number;
  us: number;
  value: number;
}

/** How long an unknown backlog is taken to go on aging (see backlogMs). */
const BACKLOG_AGING_MAX_MS = 3_600_000;

/** Thrown to roll a merge back: the slices it read are no longer all the chunk's. */
class SlicesChanged extends Error {}

const DAY_MS = 86_400_000;
const dayOf = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;

/** What a chunk's series become: its block, and its 1-minute and 1-hour rollups. */
interface Compacted {
  blocks: SeriesRow[];
  minutes: SeriesRow[];
  hours: SeriesRow[];
  samples: number;
}

function compactSeries(out: Compacted, seriesId: number, start: number, block: Block): void {
  out.blocks.push({ seriesId, start, n: block.times.length, data: encodeBlock(block) });
  const minutes = rollUp(block, MINUTE_US);
  if (minutes) out.minutes.push({ seriesId, start, data: encodeRollup(minutes) });
  const hours = rollUp(block, HOUR_US, { edges: true });
  if (hours) out.hours.push({ seriesId, start, data: encodeRollup(hours) });
  out.samples += block.times.length;
}

/** Collects one series' samples, in time order, into its block and rollups. */
class SeriesCollector {
  readonly out: Compacted = { blocks: [], minutes: [], hours: [], samples: 0 };
  private seriesId = -1;
  private times: number[] = [];
  private values: number[] = [];

  constructor(private readonly start: number) {}

  add(seriesId: number, us: number, value: number): void {
    if (seriesId !== this.seriesId) this.flush();
    this.seriesId = seriesId;
    this.times.push(us);
    this.values.push(value);
  }

  flush(): void {
    if (this.times.length === 0) return;
    const block = { times: Float64Array.from(this.times), values: Float64Array.from(this.values) };
    compactSeries(this.out, this.seriesId, this.start, block);
    this.times = [];
    this.values = [];
  }
}

/**
 * Rewrites closed chunks as one block per series (with its rollups), merges late samples into
 * chunks already compacted, and folds each closed day's 1-hour rollups into one row per series.
 * Each chunk is one transaction: blocks and rollups written, hot partition emptied and closed to
 * writers, all or nothing, so a crash at any point leaves either the hot rows or the blocks.
 * Several streamers can run it: a chunk is claimed with an advisory lock, the others skip it.
 */
export class ChunkCompactor {
  /** The backlog's age as last reported, and when: an unreachable queue's backlog is at least that, aged since. */
  private backlogSeen: { ageMs: number; at: number } | undefined;
  private backlogUnknown = false;

  constructor(private readonly deps: CompactorDeps) {}

  /**
   * How long the oldest unconsumed message has waited, at least. Nothing is consumed while the
   * queue is out of reach, so its backlog ages with the outage, for up to an hour: past that (or
   * before the queue was ever reached) compaction goes on, and late samples are merged, never lost.
   */
  private async backlogMs(now: number): Promise<number> {
    const reported = await this.deps.backlogAgeMs?.();
    if (reported !== undefined) {
      if (this.backlogUnknown) this.deps.logger.info('queue backlog known again');
      this.backlogUnknown = false;
      this.backlogSeen = { ageMs: reported, at: now };
      return reported;
    }
    if (!this.backlogUnknown)
      this.deps.logger.warn('queue backlog unknown; closed chunks it may still feed wait up to an hour');
    this.backlogUnknown = true;
    if (!this.backlogSeen) return 0;
    return this.backlogSeen.ageMs + Math.min(now - this.backlogSeen.at, BACKLOG_AGING_MAX_MS);
  }

  /** Compacts every chunk that is due; returns what was done. */
  async compactDue(): Promise<{ chunks: number; samples: number; blocks: number }> {
    const now = (this.deps.now ?? Date.now)();
    const backlog = await this.backlogMs(now);
    const closedBefore = now - Math.max(this.deps.compactAfterMs, backlog);
    const due = await chunksToCompact(this.deps.pool, new Date(closedBefore));
    const total = { chunks: 0, samples: 0, blocks: 0 };
    for (const chunk of due) {
      // A chunk that fails (rolled back whole) is tried again next round; it must not keep the
      // chunks after it waiting, nor (the only one due) the rest of the maintenance round: it is
      // counted and logged. Postgres gone fails them all: that is thrown, once.
      let done: Awaited<ReturnType<ChunkCompactor['compactChunk']>>;
      try {
        done = await this.compactChunk(chunk);
      } catch (error) {
        if (isDependencyFailure(error)) throw error;
        this.deps.metrics.compactionFailures.inc();
        this.deps.logger.error(
          { err: error, chunk: new Date(chunk.start).toISOString() },
          'chunk compaction failed; going on',
        );
        continue;
      }
      if (!done) continue;
      total.chunks++;
      total.samples += done.samples;
      total.blocks += done.blocks;
    }
    return total;
  }

  /** Compacts one chunk; null when another streamer has it or already did it. */
  async compactChunk(chunk: ChunkBounds): Promise<{ samples: number; blocks: number } | null> {
    const { pool, metrics, logger } = this.deps;
    const started = performance.now();
    await ensureChunkDays(pool, chunk.start);
    const result = await this.transaction(async (client) => {
      if (!(await lockChunk(client, chunk.start, false))) return null;
      // Compacted, or gone (compacted and merged since it was listed): nothing to do.
      if ((await isCompacted(client, chunk.start)) !== false) return null;
      await freezeHotChunk(client, chunk.start);
      // A chunk made late for a day already folded adds to the day's rows instead of its own.
      await lockRollupDay(client, dayOf(chunk.start));
      const folded = await isDayFolded(client, dayOf(chunk.start));
      const stats = await this.rewriteSeries(
        client,
        await hotSeriesRange(client, chunk.start),
        chunk.start,
        (from, to, add) => readHotSamples(client, chunk.start, from, to, add),
        async (out) => {
          await copySeriesRows(client, 'telemetry_blocks', out.blocks);
          await copySeriesRows(client, 'telemetry_rollups_1m', out.minutes);
          if (folded)
            await this.refoldHours(
              client,
              dayOf(chunk.start),
              out.blocks.map((b) => b.seriesId),
            );
          else await copySeriesRows(client, 'telemetry_rollups_1h', out.hours);
        },
      );
      await finishCompaction(client, chunk.start, stats);
      return stats;
    });
    if (result) {
      const seconds = (performance.now() - started) / 1000;
      metrics.chunksCompacted.inc();
      metrics.samplesCompacted.inc(result.samples);
      metrics.compactionDuration.observe(seconds);
      logger.info(
        { chunk: new Date(chunk.start).toISOString(), ...result, seconds: Math.round(seconds * 1000) / 1000 },
        'compacted chunk',
      );
    }
    return result;
  }

  /**
   * Merges samples into a compacted chunk: each series' block decoded, the new samples added where
   * its times are new, written back with its rollups. Returns how many were new.
   */
  async mergeLate(chunkStart: number, samples: LateSample[], signal?: AbortSignal): Promise<number> {
    if (samples.length === 0) return 0;
    const bySeries = new Map<number, LateSample[]>();
    for (const s of samples) {
      const list = bySeries.get(s.seriesId);
      if (list) list.push(s);
      else bySeries.set(s.seriesId, [s]);
    }
    const added = await this.connected(async (connection, broken) => {
      // The chunk's rollup days may be gone (kept shorter than raw samples): made again, to be
      // dropped with their retention.
      await ensureChunkDays(connection, chunkStart);
      return inTransaction(connection, (client) => this.mergeInto(client, chunkStart, bySeries), broken);
    }, signal);
    this.deps.metrics.lateMerged.inc(added);
    return added;
  }

  /** mergeLate's transaction: returns how many samples were new. */
  private async mergeInto(
    client: PoolClient,
    chunkStart: number,
    bySeries: Map<number, LateSample[]>,
  ): Promise<number> {
    await lockChunk(client, chunkStart, true);
    if ((await isCompacted(client, chunkStart)) === null) throw new ChunkMovedError(chunkStart);
    const existing = new Map(
      (await blocksForUpdate(client, chunkStart, [...bySeries.keys()])).map((b) => [b.seriesId, b.data]),
    );
    const out: Compacted = { blocks: [], minutes: [], hours: [], samples: 0 };
    let count = 0;
    for (const [seriesId, incoming] of bySeries) {
      const stored = existing.get(seriesId);
      const merged = mergeSamples(stored ? decodeBlock(stored) : undefined, incoming);
      if (merged.added === 0) continue;
      count += merged.added;
      compactSeries(out, seriesId, chunkStart, merged.block);
    }
    if (out.blocks.length === 0) return 0;
    await upsertBlocks(client, chunkStart, out.blocks, count);
    await upsertRollups(client, 'telemetry_rollups_1m', out.minutes);
    await lockRollupDay(client, dayOf(chunkStart));
    if (await isDayFolded(client, dayOf(chunkStart)))
      await this.refoldHours(
        client,
        dayOf(chunkStart),
        out.blocks.map((b) => b.seriesId),
      );
    else await upsertRollups(client, 'telemetry_rollups_1h', out.hours);
    return count;
  }

  /**
   * Merges the slices of every closed chunk whose slices are all compacted: one block per series
   * (and its rollups) for the chunk in place of one per slice. Returns how many chunks were merged.
   */
  async mergeDue(): Promise<number> {
    const { chunkMs, compactAfterMs, pool } = this.deps;
    if (!chunkMs) return 0;
    const now = (this.deps.now ?? Date.now)();
    let merged = 0;
    for (const group of await slicesToMerge(pool, chunkMs, new Date(now - compactAfterMs))) {
      if (await this.mergeSlices(group)) merged++;
    }
    return merged;
  }

  /**
   * One transaction: the slices' blocks decoded in (series, time) order and written again as one
   * block per series, with its 1-minute and (unless the day is folded) 1-hour rollups; the slices'
   * rows replaced by one. Late samples for a slice wait on its lock, then find it gone and look
   * again. Null when another streamer has one of the slices or the slices changed, before or while
   * they were merged.
   */
  async mergeSlices(group: SliceGroup): Promise<{ samples: number; blocks: number } | null> {
    const { pool, metrics, logger } = this.deps;
    const started = performance.now();
    await ensureChunkDays(pool, group.start);
    const result = await this.transaction(async (client) => {
      for (const start of group.starts) if (!(await lockChunk(client, start, false))) return null;
      const slices = await lockSlices(client, group);
      if (!slices) return null;
      await lockRollupDay(client, dayOf(group.start));
      const folded = await isDayFolded(client, dayOf(group.start));
      const stats = await this.rewriteSeries(
        client,
        await blockSeriesRange(client, group.starts),
        group.start,
        (from, to, add) =>
          readSliceBlocks(client, group.starts, from, to, (seriesId, data) => {
            const { times, values } = decodeBlock(data);
            for (let i = 0; i < times.length; i++) add(seriesId, times[i] as number, values[i] as number);
          }),
        async (out, from, to) => {
          await deleteSeriesRows(client, 'telemetry_blocks', group.starts, from, to);
          await deleteSeriesRows(client, 'telemetry_rollups_1m', group.starts, from, to);
          await copySeriesRows(client, 'telemetry_blocks', out.blocks);
          await copySeriesRows(client, 'telemetry_rollups_1m', out.minutes);
          // A folded day keeps one row per series for the day, made from its blocks: unchanged.
          if (!folded) {
            await deleteSeriesRows(client, 'telemetry_rollups_1h', group.starts, from, to);
            await copySeriesRows(client, 'telemetry_rollups_1h', out.hours);
          }
        },
      );
      // A slice made meanwhile in a gap among them: roll back, and merge it too once compacted.
      if (!(await replaceSlices(client, group, { exact: slices.exact, ...stats }))) throw new SlicesChanged();
      return stats;
    }).catch((error: unknown) => {
      if (!(error instanceof SlicesChanged)) throw error;
      logger.info(
        { chunk: new Date(group.start).toISOString() },
        'a slice was made among those merging; merging later',
      );
      return null;
    });
    if (result) {
      const seconds = (performance.now() - started) / 1000;
      metrics.slicesMerged.inc(group.starts.length);
      metrics.mergeDuration.observe(seconds);
      logger.info(
        {
          chunk: new Date(group.start).toISOString(),
          slices: group.starts.length,
          ...result,
          seconds: Math.round(seconds * 1000) / 1000,
        },
        'merged slices of a closed chunk',
      );
    }
    return result;
  }

  /**
   * Cuts a range of series ids into steps of at most `seriesPerStep` stored series, [from, to]
   * inclusive and contiguous. Counted in series, not ids: ids are not dense (one drawn by an insert
   * that lost a race is never used), and a range of sparse ids cut by id would be mostly empty steps.
   */
  private async steps(client: PoolClient, range: [number, number] | null): Promise<[number, number][]> {
    if (!range) return [];
    const count = this.deps.seriesPerStep ?? 20_000;
    const out: [number, number][] = [];
    for (let from = range[0]; from <= range[1];) {
      const to = Math.min(range[1], (await seriesStepEnd(client, from, count)) ?? range[1]);
      out.push([from, to]);
      from = to + 1;
    }
    return out;
  }

  /**
   * Rewrites a span's series as blocks and rollups, a step of series at a time so that memory
   * stays bounded: `read` hands a step's samples to `add` in (series, time) order, `write` stores
   * what they became. Returns the samples and blocks written.
   */
  private async rewriteSeries(
    client: PoolClient,
    range: [number, number] | null,
    spanStart: number,
    read: (
      fromId: number,
      toId: number,
      add: (seriesId: number, us: number, value: number) => void,
    ) => Promise<unknown>,
    write: (out: Compacted, fromId: number, toId: number) => Promise<void>,
  ): Promise<{ samples: number; blocks: number }> {
    const stats = { samples: 0, blocks: 0 };
    for (const [from, to] of await this.steps(client, range)) {
      const collector = new SeriesCollector(spanStart);
      await read(from, to, (seriesId, us, value) => collector.add(seriesId, us, value));
      collector.flush();
      await write(collector.out, from, to);
      stats.samples += collector.out.samples;
      stats.blocks += collector.out.blocks.length;
    }
    return stats;
  }

  /** Folds the 1-hour rollups of every closed, fully compacted day. */
  async foldDue(): Promise<number> {
    const now = (this.deps.now ?? Date.now)();
    let folded = 0;
    for (const day of await daysToFold(this.deps.pool, new Date(now - this.deps.compactAfterMs))) {
      if (await this.foldDay(day)) folded++;
    }
    return folded;
  }

  /**
   * One row per series for the day's 1-hour rollups, in place of one per chunk. A step of series
   * at a time is read and folded, and waits in a scratch table: memory holds one step, not the day.
   */
  async foldDay(dayStart: number): Promise<boolean> {
    return this.transaction(async (client) => {
      await lockRollupDay(client, dayStart);
      if (await isDayFolded(client, dayStart)) return false;
      await createFoldScratch(client);
      let series = 0;
      for (const [from, to] of await this.steps(client, await rollupDaySeriesRange(client, dayStart))) {
        const rows: SeriesRow[] = [];
        let seriesId = -1;
        let parts: ReturnType<typeof decodeRollup>[] = [];
        const flush = () => {
          const combined = combineRollups(parts);
          if (combined) rows.push({ seriesId, start: dayStart, data: encodeRollup(combined) });
          parts = [];
        };
        await readRollupDay(client, dayStart, from, to, (row) => {
          if (row.seriesId !== seriesId) flush();
          seriesId = row.seriesId;
          parts.push(decodeRollup(row.data));
        });
        flush();
        await copySeriesRows(client, FOLD_SCRATCH, rows);
        series += rows.length;
      }
      await replaceRollupDay(client, dayStart);
      this.deps.logger.info({ day: new Date(dayStart).toISOString().slice(0, 10), series }, 'folded rollups');
      return true;
    });
  }

  /**
   * The folded 1-hour rows of these series for a day, made again from the day's blocks, a few
   * hundred series at a time: a series' day of samples is decoded whole.
   */
  private async refoldHours(client: PoolClient, dayStart: number, seriesIds: number[]): Promise<void> {
    const batch = this.deps.refoldSeries ?? 500;
    for (let i = 0; i < seriesIds.length; i += batch) {
      const blocks = await blocksBetween(client, seriesIds.slice(i, i + batch), dayStart, dayStart + DAY_MS);
      const bySeries = new Map<number, { times: number[]; values: number[] }>();
      for (const { seriesId, data } of blocks) {
        const { times, values } = decodeBlock(data);
        let entry = bySeries.get(seriesId);
        if (!entry) bySeries.set(seriesId, (entry = { times: [], values: [] }));
        for (let k = 0; k < times.length; k++) {
          entry.times.push(times[k] as number);
          entry.values.push(values[k] as number);
        }
      }
      const rows: SeriesRow[] = [];
      for (const [seriesId, { times, values }] of bySeries) {
        const hours = rollUp(
          { times: Float64Array.from(times), values: Float64Array.from(values) },
          HOUR_US,
          {
            edges: true,
          },
        );
        if (hours) rows.push({ seriesId, start: dayStart, data: encodeRollup(hours) });
      }
      await upsertRollups(client, 'telemetry_rollups_1h', rows);
    }
  }

  private transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    return withTransaction(this.deps.pool, work);
  }

  /**
   * `run` on one pooled connection (onConnection). With `signal` (late samples of a batch, which its
   * consumer stops at STREAMER_MAX_HANDLE), the statement running when it aborts is cancelled, as
   * the batch's own are; a connection so cancelled, or whose ROLLBACK failed (`broken`), is closed
   * rather than pooled again.
   */
  private connected<T>(
    run: (client: PoolClient, broken: () => void) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    return onConnection(this.deps.pool, run, signal, (sent) =>
      this.deps.logger.warn(
        { sent },
        "late samples past their batch's limit: cancelling the statement their merge waits on",
      ),
    );
  }
}

/** A block with the incoming samples added where their times are new (what is stored wins). */
export function mergeSamples(
  stored: Block | undefined,
  incoming: LateSample[],
): { block: Block; added: number } {
  const byTime = new Map<number, number>();
  if (stored)
    for (let i = 0; i < stored.times.length; i++)
      byTime.set(stored.times[i] as number, stored.values[i] as number);
  let added = 0;
  for (const s of incoming) {
    if (byTime.has(s.us)) continue;
    byTime.set(s.us, s.value);
    added++;
  }
  const times = Float64Array.from(byTime.keys()).sort();
  return { block: { times, values: Float64Array.from(times, (t) => byTime.get(t) as number) }, added };
}
