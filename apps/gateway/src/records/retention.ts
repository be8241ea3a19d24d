import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import type { Counter } from 'prom-client';
import type { Kysely } from 'kysely';
import type { GatewayDatabase } from '../gateway.tables';
import { deleteSpansBefore } from '../traces/traces.queries';
import { deleteRequestsBefore } from './requests.queries';

const BATCH = 10_000;
const tracer = getTracer('gateway');

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
      /** `gateway_retention_failures_total`: a retention that keeps failing lets the tables grow. */
      failures?: Counter;
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

  /**
   * One round as the timer runs it: a span (`gateway.retention`) over its deletions, what was
   * deleted logged, a failure counted and logged with its error, never thrown.
   */
  async runLogged(): Promise<void> {
    await withSpan(tracer, 'gateway.retention', {}, async (span) => {
      try {
        const deleted = await this.runOnce();
        span.setAttributes({
          'gateway.deleted.requests': deleted.requests,
          'gateway.deleted.spans': deleted.spans,
        });
        if (deleted.requests + deleted.spans > 0)
          this.deps.logger.info(deleted, 'deleted expired request records and spans');
      } catch (error) {
        this.deps.failures?.inc();
        this.deps.logger.warn({ err: error }, 'gateway retention failed; will retry');
        throw error;
      }
    }).catch(() => undefined);
  }

  start(): void {
    if (this.deps.retentionMs <= 0) return;
    const run = () => void this.runLogged();
    this.timer = setInterval(run, this.deps.intervalMs ?? 3_600_000);
    this.timer.unref();
    run();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
