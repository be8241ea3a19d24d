import { randomUUID } from 'node:crypto';
import type { Logger } from '@gpu-telemetry/service-kit';
import { Client, type Pool } from 'pg';
import type { LeaseWaiters } from './lease-waiters';
import { listenForPublishes, notifyPublished, readPublishNotice } from './queue.queries';

/**
 * Wakes long-polls on other replicas. After a publish commits, local waiters wake at once and one
 * NOTIFY per topic goes out (coalesced: at most one NOTIFY query in flight). A dedicated LISTEN
 * connection wakes this replica's waiters when another replica publishes; it reconnects with
 * backoff, and while it is down waiters still wake on local publishes and on their fallback timer.
 */
export class PublishNotifier {
  readonly instanceId = randomUUID();
  private listener: Client | undefined;
  private pending = new Set<string>();
  private flushing = false;
  private stopped = false;
  private retryMs = 500;
  private retryTimer: NodeJS.Timeout | undefined;

  private warnedAt = -Infinity;

  constructor(
    private readonly deps: {
      connectionString: string;
      pool: Pool;
      waiters: LeaseWaiters;
      logger: Logger;
      /** Counts a NOTIFY that failed (queue_notify_failures_total). */
      onNotifyFailed?: () => void;
    },
  ) {}

  get listening(): boolean {
    return this.listener !== undefined;
  }

  async start(): Promise<void> {
    this.stopped = false;
    await this.connect().catch(() => this.scheduleReconnect());
  }

  /** A publish (or redrive, or nack) committed on `topic`. */
  published(topic: string): void {
    this.deps.waiters.notify(topic);
    this.pending.add(topic);
    void this.flush();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.pending.size === 0 || this.stopped) return;
    this.flushing = true;
    const topics = [...this.pending];
    this.pending.clear();
    try {
      await notifyPublished(this.deps.pool, this.instanceId, topics);
    } catch (error) {
      this.deps.onNotifyFailed?.();
      // Warned at most once a minute: a Postgres outage fails every publish's NOTIFY.
      const now = performance.now();
      if (now - this.warnedAt >= 60_000) {
        this.warnedAt = now;
        this.deps.logger.warn({ err: error }, 'notify failed; other replicas wake on their fallback timer');
      }
    } finally {
      this.flushing = false;
    }
    if (this.pending.size > 0) void this.flush();
  }

  private async connect(): Promise<void> {
    // TCP keepalive, as the pool's connections have: an idle LISTEN socket dropped by a NAT or a
    // load balancer would otherwise never report an error, and the replica would stop hearing
    // other replicas' publishes without a word.
    const client = new Client({
      connectionString: this.deps.connectionString,
      application_name: 'queue-listener',
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    client.on('error', (error) => {
      this.deps.logger.warn({ err: error }, 'listen connection lost');
      if (this.listener === client) this.listener = undefined;
      client.end().catch(() => undefined);
      this.scheduleReconnect();
    });
    client.on('notification', ({ payload }) => {
      if (!payload) return;
      const { sender, topic } = readPublishNotice(payload);
      if (sender !== this.instanceId) this.deps.waiters.notify(topic);
    });
    await client.connect();
    await listenForPublishes(client);
    if (this.stopped) {
      await client.end();
      return;
    }
    this.listener = client;
    this.retryMs = 500;
    this.deps.logger.debug('listening for publishes from other replicas');
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch(() => this.scheduleReconnect());
    }, this.retryMs);
    this.retryTimer.unref();
    this.retryMs = Math.min(this.retryMs * 2, 30_000);
  }
}
