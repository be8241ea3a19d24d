import type { Logger } from '@gpu-telemetry/service-kit';
import type { Pool, PoolClient } from 'pg';
import { type Block, decodeBlock, encodeBlock } from '../codec/block-codec';
import {
  type BlockRow,
  blocksForUpdate,
  type ChunkBounds,
  chunksToCompact,
  ensureBlockDay,
  finishCompaction,
  freezeHotChunk,
  hotSeriesRange,
  isCompacted,
  lockChunk,
  readHotSamples,
  upsertBlocks,
  writeBlocks,
} from './compaction.queries';
import type { StreamerMetrics } from './streamer.metrics';

export interface CompactorDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  /** A chunk is compacted once it has been closed this long (TELEMETRY_COMPACT_AFTER). */
  compactAfterMs: number;
  now?: () => number;
  /** Series read and written per step of a chunk's compaction, to bound memory. */
  seriesPerStep?: number;
}

/** A sample on its way into a compacted chunk. */
export interface LateSample {
  seriesId: number;
  us: number;
  value: number;
}

/** Collects one series' samples, in time order, into blocks. */
class BlockBuilder {
  readonly blocks: BlockRow[] = [];
  private seriesId = -1;
  private times: number[] = [];
  private values: number[] = [];
  samples = 0;

  add(seriesId: number, us: number, value: number): void {
    if (seriesId !== this.seriesId) this.flush();
    this.seriesId = seriesId;
    this.times.push(us);
    this.values.push(value);
    this.samples++;
  }

  flush(): void {
    if (this.times.length === 0) return;
    const block: Block = { times: Float64Array.from(this.times), values: Float64Array.from(this.values) };
    this.blocks.push({ seriesId: this.seriesId, n: this.times.length, data: encodeBlock(block) });
    this.times = [];
    this.values = [];
  }
}

/**
 * Rewrites closed chunks as one block per series, and merges late samples into chunks already
 * compacted. Each chunk is one transaction: its blocks written, its hot partition emptied and
 * closed to writers, all or nothing, so a crash at any point leaves either the hot rows or the
 * blocks. Several streamers can run it: a chunk is claimed with an advisory lock, others skip it.
 */
export class ChunkCompactor {
  constructor(private readonly deps: CompactorDeps) {}

  /** Compacts every chunk that is due; returns what was done. */
  async compactDue(): Promise<{ chunks: number; samples: number; blocks: number }> {
    const now = (this.deps.now ?? Date.now)();
    const due = await chunksToCompact(this.deps.pool, new Date(now - this.deps.compactAfterMs));
    const total = { chunks: 0, samples: 0, blocks: 0 };
    for (const chunk of due) {
      const done = await this.compactChunk(chunk);
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
    await ensureBlockDay(pool, chunk.start);
    const result = await this.transaction(async (client) => {
      if (!(await lockChunk(client, chunk.start, false))) return null;
      if (await isCompacted(client, chunk.start)) return null;
      await freezeHotChunk(client, chunk.start);
      const stats = { samples: 0, blocks: 0 };
      const range = await hotSeriesRange(client, chunk.start);
      const step = this.deps.seriesPerStep ?? 20_000;
      for (let from = range?.[0] ?? 1; range && from <= range[1]; from += step) {
        const builder = new BlockBuilder();
        await readHotSamples(client, chunk.start, from, from + step - 1, (id, us, value) =>
          builder.add(id, us, value),
        );
        builder.flush();
        await writeBlocks(client, chunk.start, builder.blocks);
        stats.samples += builder.samples;
        stats.blocks += builder.blocks.length;
      }
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
   * its times are new, and written back. Returns how many were new.
   */
  async mergeLate(chunkStart: number, samples: LateSample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const bySeries = new Map<number, LateSample[]>();
    for (const s of samples) {
      const list = bySeries.get(s.seriesId);
      if (list) list.push(s);
      else bySeries.set(s.seriesId, [s]);
    }
    const added = await this.transaction(async (client) => {
      await lockChunk(client, chunkStart, true);
      const existing = new Map(
        (await blocksForUpdate(client, chunkStart, [...bySeries.keys()])).map((b) => [b.seriesId, b.data]),
      );
      const blocks: BlockRow[] = [];
      let count = 0;
      for (const [seriesId, incoming] of bySeries) {
        const stored = existing.get(seriesId);
        const merged = mergeSamples(stored ? decodeBlock(stored) : undefined, incoming);
        if (merged.added === 0) continue;
        count += merged.added;
        blocks.push({ seriesId, n: merged.block.times.length, data: encodeBlock(merged.block) });
      }
      await upsertBlocks(client, chunkStart, blocks, count);
      return count;
    });
    this.deps.metrics.lateMerged.inc(added);
    return added;
  }

  private async transaction<T>(work: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.deps.pool.connect();
    try {
      await client.query('BEGIN');
      try {
        const result = await work(client);
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      }
    } finally {
      client.release();
    }
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
