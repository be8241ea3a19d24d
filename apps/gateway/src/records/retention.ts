import type { Logger } from '@gpu-telemetry/service-kit';
import type { Kysely } from 'kysely';
import type { GatewayDatabase } from '../gateway.tables';
import { deleteSpansBefore } from '../traces/traces.queries';
import { deleteRequestsBefore } from './requests.queries';

const BATCH = 10_000;

/**
 * Deletes request records and spans older than the retention, BATCH rows per statement so a large
 * backlog never holds a long lock; hourly, and safe on every replica at once.
 */
export class GatewayRetention {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      db: Kysely<GatewayDatabase>;
      logger: Logger;
      retentionMs: number;
      intervalMs?: number;
    },
  ) {}

  async runOnce(now = Date.now()): Promise<{ requests: number; spans: number }> {
    const before = new Date(now - this.deps.retentionMs);
    const purge = async (
      deleteBefore: (db: Kysely<GatewayDatabase>, before: Date, limit: number) => Promise<number>,
    ) => {
      let total = 0;
      for (;;) {
        const deleted = await deleteBefore(this.deps.db, before, BATCH);
        total += deleted;
        if (deleted < BATCH) return total;
      }
    };
    return {
      requests: await purge(deleteRequestsBefore),
      spans: await purge(deleteSpansBefore),
    };
  }

  start(): void {
    if (this.deps.retentionMs <= 0) return;
    const run = () =>
      this.runOnce()
        .then((deleted) => {
          if (deleted.requests + deleted.spans > 0)
            this.deps.logger.info(deleted, 'deleted expired request records and spans');
        })
        .catch((error: unknown) =>
          this.deps.logger.warn({ error: (error as Error).message }, 'gateway retention failed; will retry'),
        );
    this.timer = setInterval(run, this.deps.intervalMs ?? 3_600_000);
    this.timer.unref();
    void run();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
