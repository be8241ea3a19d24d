import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import type { ChunkCompactor } from './chunk-compactor';
import { dropCompactedPartitions, dropRollupDays } from './compaction.queries';
import type { StorageService } from './storage.service';
import type { StreamerMetrics } from './streamer.metrics';
import {
  deleteGpusNotSeenSince,
  deleteSeriesNotSeenFor,
  deleteStaleMarkersBefore,
  dropChunks,
  ensureChunks,
  forgetColdHotTimes,
} from './telemetry-write.queries';

export interface MaintainerDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  compactor: ChunkCompactor;
  /** Measured after compaction rounds that did something, and at least once a minute (the streamer_storage_* gauges). */
  storage?: StorageService;
  /** How long samples, 1-minute and 1-hour rollups are kept; 0 keeps them for ever. */
  retentionMs: number;
  retention1mMs?: number;
  retention1hMs?: number;
  chunkMs: number;
  /** TELEMETRY_SLICE as worked out (sliceLength): hot partitions are made this long; default the chunk. */
  sliceMs?: number;
  /** How often chunks are made ahead and expired ones dropped. */
  intervalMs: number;
  /** How often closed chunks are looked for and compacted. */
  compactEveryMs: number;
  onDropped?: () => void;
  now?: () => number;
}

/** How long past the longest retention an unseen series is kept (see maintain()). */
export const SERIES_GRACE_MS = 4 * 86_400_000;
const SERIES_DELETE_BATCH = 5_000;

const tracer = getTracer('streamer');

export type MaintenanceTask = 'maintenance' | 'compaction';

/**
 * A loop that never runs twice at once and logs rather than throws. Each round is a span
 * (`streamer.maintenance`, `streamer.compaction`) over its queries; a failed one is counted in
 * `streamer_maintenance_failures_total{task}`, so that retention or compaction that keeps failing
 * (the disk filling behind it) can be alerted on, not only read in the log.
 */
class Loop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly task: MaintenanceTask,
    private readonly work: () => Promise<unknown>,
    private readonly logger: Logger,
    private readonly metrics: StreamerMetrics,
  ) {}

  run(): Promise<unknown> {
    this.running ??= withSpan(tracer, `streamer.${this.task}`, {}, async () => {
      try {
        return await this.work();
      } catch (error) {
        // Inside the span, so that the line carries the round's trace id.
        this.metrics.maintenanceFailures.inc({ task: this.task });
        this.logger.warn({ err: error, task: this.task }, `telemetry ${this.task} failed; will retry`);
        throw error;
      }
    })
      .catch(() => undefined)
      .finally(() => (this.running = undefined));
    return this.running;
  }

  start(everyMs: number): void {
    void this.run();
    this.timer = setInterval(() => void this.run(), everyMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}

/**
 * How long a GPU unseen stays in `gpus` (ms): while anything of it is kept, since its rollups can
 * outlive its samples, so the longest retention; 0 when one of them keeps everything (never deleted).
 */
export function gpuRetention(retentionMs: number, retention1mMs: number, retention1hMs: number): number {
  const kept = [retentionMs, retention1mMs, retention1hMs];
  return kept.every((ms) => ms > 0) ? Math.max(...kept) : 0;
}

/**
 * Keeps the current and the next chunk ready, compacts closed chunks, drops the emptied hot
 * partitions, and drops whole chunks older than TELEMETRY_RETENTION: retention without DELETE, so
 * without bloat. Safe on every replica at once (the SQL takes advisory locks).
 */
export class TelemetryMaintainer {
  private readonly maintenance: Loop;
  private readonly compaction: Loop;
  private measuredAt = -Infinity;

  constructor(private readonly deps: MaintainerDeps) {
    this.maintenance = new Loop('maintenance', () => this.maintain(), deps.logger, deps.metrics);
    this.compaction = new Loop('compaction', () => this.compact(), deps.logger, deps.metrics);
    deps.metrics.maintenanceFailures.inc({ task: 'maintenance' }, 0);
    deps.metrics.maintenanceFailures.inc({ task: 'compaction' }, 0);
  }

  /** One round of each, as the loops run them: traced, and a failure counted and logged, never thrown. */
  async runLogged(): Promise<void> {
    await this.maintenance.run();
    await this.compaction.run();
  }

  /** One round of everything, in order; throws what fails. */
  async runOnce(): Promise<{ dropped: Date[]; compacted: number }> {
    const { dropped } = await this.maintain();
    const { chunks } = await this.compact();
    return { dropped, compacted: chunks };
  }

  async maintain(): Promise<{ dropped: Date[]; seriesDeleted: number }> {
    const { pool, chunkMs, sliceMs = chunkMs, retentionMs } = this.deps;
    const now = (this.deps.now ?? Date.now)();
    await ensureChunks(pool, [now, now + sliceMs], sliceMs);
    let dropped: Date[] = [];
    if (retentionMs > 0) {
      const before = new Date(now - retentionMs);
      dropped = await dropChunks(pool, before);
      // Markers are rare (a series went away), so DELETE is cheap here where the samples need DROP.
      await deleteStaleMarkersBefore(pool, before);
      if (dropped.length > 0) await forgetColdHotTimes(pool);
      this.deps.metrics.chunksDropped.inc(dropped.length);
      if (dropped.length > 0) {
        this.deps.onDropped?.();
        this.deps.logger.info({ dropped: dropped.length }, 'dropped expired telemetry chunks');
      }
    }
    const { retention1mMs = 0, retention1hMs = 0 } = this.deps;
    if (retention1mMs > 0) await dropRollupDays(pool, 'telemetry_rollups_1m', new Date(now - retention1mMs));
    if (retention1hMs > 0) await dropRollupDays(pool, 'telemetry_rollups_1h', new Date(now - retention1hMs));
    const gpuKeptMs = gpuRetention(retentionMs, retention1mMs, retention1hMs);
    let seriesDeleted = 0;
    if (gpuKeptMs > 0) {
      await deleteGpusNotSeenSince(pool, new Date(now - gpuKeptMs));
      // A series goes once nothing of it can be left: its last day of blocks and rollups is
      // dropped a day after the retention passes it, last_seen may be a day behind, a streamer's
      // cache may use an id for 6 hours without a round trip, and a sample may be stamped up to
      // a day ahead; four days cover all.
      for (let n = SERIES_DELETE_BATCH; n === SERIES_DELETE_BATCH;) {
        n = await deleteSeriesNotSeenFor(pool, gpuKeptMs + SERIES_GRACE_MS, SERIES_DELETE_BATCH);
        seriesDeleted += n;
      }
      if (seriesDeleted > 0) {
        this.deps.metrics.seriesDeleted.inc(seriesDeleted);
        this.deps.logger.info(
          { deleted: seriesDeleted },
          'deleted series not seen since every retention passed',
        );
      }
    }
    return { dropped, seriesDeleted };
  }

  async compact(): Promise<{ chunks: number; samples: number; merged: number; folded: number }> {
    const done = await this.deps.compactor.compactDue();
    if (done.chunks > 0) this.deps.onDropped?.();
    await dropCompactedPartitions(this.deps.pool);
    if (done.chunks > 0) await forgetColdHotTimes(this.deps.pool);
    // Slices merge once their hot partitions are dropped (a partition is found by its slice's row).
    const merged = await this.deps.compactor.mergeDue();
    if (merged > 0) this.deps.onDropped?.();
    const folded = await this.deps.compactor.foldDue();
    const now = (this.deps.now ?? Date.now)();
    if (
      this.deps.storage &&
      (done.chunks > 0 || merged > 0 || folded > 0 || now - this.measuredAt >= 60_000)
    ) {
      this.measuredAt = now;
      await this.deps.storage.report();
    }
    return { ...done, merged, folded };
  }

  start(): void {
    this.maintenance.start(this.deps.intervalMs);
    this.compaction.start(this.deps.compactEveryMs);
  }

  /** Stops the loops and waits for the rounds in progress. */
  async stop(): Promise<void> {
    await Promise.all([this.maintenance.stop(), this.compaction.stop()]);
  }
}
