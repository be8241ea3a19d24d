import type { Logger } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import type { StreamerMetrics } from './streamer.metrics';
import { dropExpired, ensurePartitions } from './telemetry.queries';

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Keeps daily partitions ready from yesterday to two days ahead, and drops whole days older than
 * TELEMETRY_RETENTION: retention without DELETE, so without bloat. Safe on every replica at once
 * (the SQL functions take an advisory lock).
 */
export class PartitionMaintainer {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      pool: Pool;
      logger: Logger;
      metrics: StreamerMetrics;
      retentionMs: number;
      intervalMs: number;
      onDropped?: () => void;
      now?: () => number;
    },
  ) {}

  async runOnce(): Promise<{ created: number; dropped: string[] }> {
    const now = (this.deps.now ?? Date.now)();
    const created = await ensurePartitions(this.deps.pool, isoDay(now - DAY_MS), isoDay(now + 2 * DAY_MS));
    this.deps.metrics.partitionsCreated.inc(created);
    let dropped: string[] = [];
    if (this.deps.retentionMs > 0) {
      dropped = await dropExpired(this.deps.pool, new Date(now - this.deps.retentionMs));
      this.deps.metrics.partitionsDropped.inc(dropped.length);
      if (dropped.length > 0) {
        this.deps.onDropped?.();
        this.deps.logger.info({ dropped }, 'dropped expired telemetry partitions');
      }
    }
    return { created, dropped };
  }

  start(): void {
    const run = () =>
      this.runOnce().catch((error: unknown) =>
        this.deps.logger.warn({ err: error }, 'partition maintenance failed; will retry'),
      );
    void run();
    this.timer = setInterval(run, this.deps.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
