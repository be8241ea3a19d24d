import type { Logger } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import type { StreamerMetrics } from './streamer.metrics';
import { deleteGpusNotSeenSince, dropChunks, ensureChunks } from './telemetry-write.queries';

export interface MaintainerDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  retentionMs: number;
  chunkMs: number;
  intervalMs: number;
  onDropped?: () => void;
  now?: () => number;
}

/**
 * Keeps the current and the next chunk ready, and drops whole chunks older than
 * TELEMETRY_RETENTION: retention without DELETE, so without bloat. Safe on every replica at once
 * (the SQL functions take an advisory lock).
 */
export class TelemetryMaintainer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(private readonly deps: MaintainerDeps) {}

  async runOnce(): Promise<{ dropped: Date[] }> {
    const { pool, chunkMs, retentionMs } = this.deps;
    const now = (this.deps.now ?? Date.now)();
    await ensureChunks(pool, [now, now + chunkMs], chunkMs);
    let dropped: Date[] = [];
    if (retentionMs > 0) {
      const before = new Date(now - retentionMs);
      dropped = await dropChunks(pool, before);
      await deleteGpusNotSeenSince(pool, before);
      this.deps.metrics.chunksDropped.inc(dropped.length);
      if (dropped.length > 0) {
        this.deps.onDropped?.();
        this.deps.logger.info({ dropped: dropped.length }, 'dropped expired telemetry chunks');
      }
    }
    return { dropped };
  }

  start(): void {
    const run = () => {
      this.running ??= this.runOnce()
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error }, 'telemetry maintenance failed; will retry'),
        )
        .finally(() => (this.running = undefined));
    };
    run();
    this.timer = setInterval(run, this.deps.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
