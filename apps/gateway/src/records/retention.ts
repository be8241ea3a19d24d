import type { Logger } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';

const BATCH = 10_000;

/**
 * Deletes request records and spans older than the retention, in batches of 10,000 rows so a
 * large backlog never holds a long lock; hourly, and safe on every replica at once.
 */
export class GatewayRetention {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: { pool: Pool; logger: Logger; retentionMs: number; intervalMs?: number },
  ) {}

  async runOnce(now = Date.now()): Promise<{ requests: number; spans: number }> {
    const before = new Date(now - this.deps.retentionMs);
    const purge = async (table: 'gateway_requests' | 'gateway_spans', column: 'at' | 'start_time') => {
      let total = 0;
      for (;;) {
        const { rowCount } = await this.deps.pool.query(
          `DELETE FROM ${table} WHERE ctid IN (SELECT ctid FROM ${table} WHERE ${column} < $1 LIMIT ${BATCH})`,
          [before],
        );
        total += rowCount ?? 0;
        if ((rowCount ?? 0) < BATCH) return total;
      }
    };
    return {
      requests: await purge('gateway_requests', 'at'),
      spans: await purge('gateway_spans', 'start_time'),
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
