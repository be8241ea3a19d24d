import type { QueueClient } from '@gpu-telemetry/queue-client';
import type { Logger } from '@gpu-telemetry/service-kit';
import type { CollectorMetrics } from '../collector.metrics';
import type { OutgoingMessage } from './message-builder';

export interface PublisherOptions {
  client: Pick<QueueClient, 'publishSerialized'>;
  topic: string;
  /** Most samples held while the queue is slow or down; past it the oldest are dropped and counted. */
  maxBufferedSamples: number;
  /** Messages per publish request. */
  messagesPerPublish: number;
  logger: Logger;
  metrics: CollectorMetrics;
  retry?: { minMs: number; maxMs: number };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Decouples scraping from publishing. Scrapes enqueue messages and return at once; one loop
 * publishes them in batches, retrying with exponential backoff while the queue is slow or down
 * (ids are deterministic, so a retry that had in fact succeeded is a duplicate the queue drops).
 * The buffer is bounded: when full, the oldest messages not being published are dropped, counted
 * in collector_samples_dropped_total. Scraping is never blocked.
 */
export class Publisher {
  private buffer: OutgoingMessage[] = [];
  private inFlight = 0;
  private buffered = 0;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  private retryMs: number;
  /** Totals since start, for tests and logs. */
  readonly totals = { published: 0, dropped: 0 };

  constructor(private readonly options: PublisherOptions) {
    this.retryMs = options.retry?.minMs ?? 100;
  }

  get bufferedSamples(): number {
    return this.buffered;
  }

  enqueue(messages: OutgoingMessage[]): void {
    if (this.stopping) {
      this.drop(messages, 'shutdown');
      return;
    }
    for (const message of messages) {
      this.buffer.push(message);
      this.buffered += message.samples;
    }
    while (this.buffered > this.options.maxBufferedSamples && this.buffer.length > this.inFlight) {
      const [oldest] = this.buffer.splice(this.inFlight, 1);
      if (!oldest) break;
      this.buffered -= oldest.samples;
      this.drop([oldest], 'buffer_full');
    }
    this.options.metrics.buffered.set(this.buffered);
    this.wake?.();
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Publishes what it can until `timeoutMs`, then counts the rest as dropped. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await Promise.race([this.loop, sleep(timeoutMs)]);
    this.drop(this.buffer.splice(this.inFlight), 'shutdown');
    this.buffered = 0;
    this.options.metrics.buffered.set(0);
  }

  private async run(): Promise<void> {
    const { client, topic, logger, metrics } = this.options;
    const max = this.options.retry?.maxMs ?? 30_000;
    for (;;) {
      if (this.buffer.length === 0) {
        if (this.stopping) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      const batch = this.buffer.slice(0, this.options.messagesPerPublish);
      this.inFlight = batch.length;
      const samples = batch.reduce((sum, m) => sum + m.samples, 0);
      const started = performance.now();
      try {
        await client.publishSerialized(
          topic,
          batch.map((m) => m.json),
        );
        metrics.publishDuration.observe((performance.now() - started) / 1000);
        metrics.published.inc(samples);
        this.totals.published += samples;
        this.retryMs = this.options.retry?.minMs ?? 100;
        this.settle(batch);
      } catch (error) {
        const status = (error as { status?: number }).status;
        metrics.publishErrors.inc();
        if (status !== undefined && status >= 400 && status < 500 && status !== 429 && status !== 408) {
          // The queue refuses these messages outright; retrying would block everything behind them.
          logger.error(
            { err: error, messages: batch.length, samples },
            'queue rejected messages; dropping them',
          );
          this.settle(batch);
          this.drop(batch, 'rejected');
          continue;
        }
        if (this.stopping) {
          this.inFlight = 0;
          return;
        }
        logger.warn(
          { err: error, retryInMs: this.retryMs, bufferedSamples: this.buffered },
          'publish failed; retrying',
        );
        this.inFlight = 0;
        await sleep(this.retryMs * (0.5 + Math.random() / 2));
        this.retryMs = Math.min(this.retryMs * 2, max);
      }
    }
  }

  /** Removes a published (or rejected) batch from the front of the buffer. */
  private settle(batch: OutgoingMessage[]): void {
    this.buffer.splice(0, batch.length);
    this.inFlight = 0;
    this.buffered -= batch.reduce((sum, m) => sum + m.samples, 0);
    this.options.metrics.buffered.set(this.buffered);
  }

  private drop(messages: OutgoingMessage[], reason: 'buffer_full' | 'rejected' | 'shutdown'): void {
    const samples = messages.reduce((sum, m) => sum + m.samples, 0);
    if (samples === 0) return;
    this.totals.dropped += samples;
    this.options.metrics.dropped.inc({ reason }, samples);
    this.options.logger.warn({ samples, reason }, 'dropped samples');
  }
}
