import type { Pool } from 'pg';
import { compactedByDay, countHotSamples, hotTimesSize, partitionSizes, seriesSize } from './storage.queries';
import type { StreamerMetrics } from './streamer.metrics';

/** One way of storing samples: its bytes, the samples in it, and the two divided. */
export interface SampleTier {
  bytes: number;
  samples: number;
  /** Bytes per sample, indexes included; null while it holds none. */
  bytesPerSample: number | null;
}

export interface StorageReport {
  /** Narrow rows of the chunks not compacted yet. */
  hot: SampleTier & { estimated: boolean };
  /** One encoded block per series per compacted chunk. */
  blocks: SampleTier & { blocks: number };
  rollups1m: { bytes: number };
  rollups1h: { bytes: number };
  series: { count: number; bytes: number };
  totalBytes: number;
}

/**
 * Hot rows are counted while their partitions hold up to this many pages (80 MB, about 1.5
 * million rows: a count of a tenth of a second), and estimated from Postgres' statistics past it.
 */
const COUNT_HOT_UP_TO_PAGES = 10_000;
/** A page of hot rows (52 bytes each with their line pointer), for partitions not analysed yet. */
const HOT_ROWS_PER_PAGE = 156;

const perSample = (bytes: number, samples: number) =>
  samples > 0 ? Math.round((bytes / samples) * 100) / 100 : null;

/**
 * What the stored telemetry costs, tier by tier: the figure an operator sizes disks with, and the
 * one that shows compaction at work (bytes per sample in blocks against hot rows).
 */
export class StorageService {
  private measuring: Promise<StorageReport> | undefined;

  constructor(
    private readonly deps: {
      pool: Pool;
      /** TELEMETRY_RETENTION: a day of blocks older than this may have lost chunks already. */
      retentionMs: number;
      metrics?: StreamerMetrics;
      now?: () => number;
    },
  ) {}

  /** Measures now; callers that ask while a measurement runs share it, so asking often costs one. */
  report(): Promise<StorageReport> {
    this.measuring ??= this.measure().finally(() => (this.measuring = undefined));
    return this.measuring;
  }

  private async measure(): Promise<StorageReport> {
    const { pool } = this.deps;
    const [hotParts, hotTimes, blockParts, m1, h1, series, byDay] = await Promise.all([
      partitionSizes(pool, 'telemetry_samples'),
      hotTimesSize(pool),
      partitionSizes(pool, 'telemetry_blocks'),
      partitionSizes(pool, 'telemetry_rollups_1m'),
      partitionSizes(pool, 'telemetry_rollups_1h'),
      seriesSize(pool),
      compactedByDay(pool),
    ]);
    const sum = (parts: { bytes: number }[]) => parts.reduce((n, p) => n + p.bytes, 0);

    const hotBytes = sum(hotParts) + hotTimes;
    const hotPages = hotParts.reduce((n, p) => n + p.pages, 0);
    const estimated = hotPages > COUNT_HOT_UP_TO_PAGES;
    const hotSamples = estimated
      ? hotParts.reduce(
          (n, p) => n + (p.estimatedRows >= 0 ? p.estimatedRows : p.pages * HOT_ROWS_PER_PAGE),
          0,
        )
      : await countHotSamples(pool);

    // Retention drops chunks one by one but a day of blocks whole, once the day is past: the
    // oldest day may still hold blocks of chunks no longer listed. Bytes per sample is taken over
    // the days that cannot have lost any.
    const now = (this.deps.now ?? Date.now)();
    const complete = this.deps.retentionMs > 0 ? now - this.deps.retentionMs : -Infinity;
    let blockBytes = 0;
    let samples = 0;
    let blocks = 0;
    let wholeBytes = 0;
    let wholeSamples = 0;
    for (const part of blockParts) {
      blockBytes += part.bytes;
      const match = /_(\d{4})(\d{2})(\d{2})$/.exec(part.name);
      if (!match) continue;
      const day = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
      const listed = byDay.get(day) ?? { samples: 0, blocks: 0 };
      samples += listed.samples;
      blocks += listed.blocks;
      if (day >= complete) {
        wholeBytes += part.bytes;
        wholeSamples += listed.samples;
      }
    }

    const report: StorageReport = {
      hot: {
        bytes: hotBytes,
        samples: hotSamples,
        bytesPerSample: perSample(hotBytes, hotSamples),
        estimated,
      },
      blocks: { bytes: blockBytes, samples, blocks, bytesPerSample: perSample(wholeBytes, wholeSamples) },
      rollups1m: { bytes: sum(m1) },
      rollups1h: { bytes: sum(h1) },
      series,
      totalBytes: hotBytes + blockBytes + sum(m1) + sum(h1) + series.bytes,
    };
    this.record(report);
    return report;
  }

  private record(report: StorageReport): void {
    const metrics = this.deps.metrics;
    if (!metrics) return;
    metrics.storageBytes.set({ tier: 'hot' }, report.hot.bytes);
    metrics.storageBytes.set({ tier: 'blocks' }, report.blocks.bytes);
    metrics.storageBytes.set({ tier: 'rollups_1m' }, report.rollups1m.bytes);
    metrics.storageBytes.set({ tier: 'rollups_1h' }, report.rollups1h.bytes);
    metrics.storageBytes.set({ tier: 'series' }, report.series.bytes);
    metrics.storageSamples.set({ tier: 'hot' }, report.hot.samples);
    metrics.storageSamples.set({ tier: 'blocks' }, report.blocks.samples);
    metrics.storageSeries.set(report.series.count);
  }
}
