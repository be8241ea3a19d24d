import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import type { Logger } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import type { Counter, Gauge } from 'prom-client';
import { copyRequests, type RequestRecord } from './requests.queries';

/**
 * Records per statement. A batch is encoded on the event loop, between requests, so it is kept
 * small enough that the pause stays well under a request's latency (docs/performance.md).
 */
const STATEMENT_BATCH = 250;

/**
 * Records every proxied request without slowing it: `record` only appends to a bounded buffer;
 * a timer writes the buffer in one statement per batch. When Postgres is slow or down the buffer
 * fills and further records are dropped and counted, never the requests themselves.
 */
export class RequestRecorder {
  private buffer: RequestRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly deps: {
      pool: Pool;
      logger: Logger;
      maxBuffered: number;
      flushIntervalMs: number;
      dropped: Counter;
      buffered: Gauge;
      written: Counter;
    },
  ) {}

  record(entry: RequestRecord): void {
    if (this.buffer.length >= this.deps.maxBuffered) {
      this.deps.dropped.inc();
      return;
    }
    this.buffer.push(entry);
    this.deps.buffered.set(this.buffer.length);
    if (this.buffer.length >= 4 * STATEMENT_BATCH) void this.flush();
  }

  start(): void {
    this.timer = setInterval(() => void this.flush(), this.deps.flushIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  /**
   * Writes what is buffered; on failure the batch goes back to the front (if it still fits). Outside
   * any trace: a flush that a request's record happened to trigger is not that request's work.
   */
  flush(): Promise<void> {
    this.flushing ??= context
      .with(ROOT_CONTEXT, () => this.write())
      .finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async write(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, STATEMENT_BATCH);
      try {
        await copyRequests(this.deps.pool, batch);
        this.deps.written.inc(batch.length);
      } catch (error) {
        const room = this.deps.maxBuffered - this.buffer.length;
        this.buffer.unshift(...batch.slice(0, Math.max(0, room)));
        if (batch.length > room) this.deps.dropped.inc(batch.length - Math.max(0, room));
        this.deps.logger.warn(
          { error: (error as Error).message, records: batch.length },
          'could not write request records; will retry',
        );
        break;
      } finally {
        this.deps.buffered.set(this.buffer.length);
      }
    }
  }
}
