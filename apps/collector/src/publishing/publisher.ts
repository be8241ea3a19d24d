import { SpanKind } from '@opentelemetry/api';
import { type QueueClient, QueueRequestError } from '@gpu-telemetry/queue-client';
import { getTracer, type Logger, waitAtMost, withSpan } from '@gpu-telemetry/service-kit';
import type { CollectorMetrics } from '../collector.metrics';
import type { OutgoingMessage } from './message-builder';

const tracer = getTracer('collector');

export interface PublisherOptions {
  client: Pick<QueueClient, 'publishSerialized'>;
  topic: string;
  /** Most samples held while the queue is slow or down; past it the oldest are dropped and counted. */
  maxBufferedSamples: number;
  /**
   * Most bytes of messages held (their JSON, metadata messages included), whatever samples they
   * carry: samples with long labels, or metadata, cost far more than a sample each.
   */
  maxBufferedBytes: number;
  /** Messages per publish request. */
  messagesPerPublish: number;
  logger: Logger;
  metrics: CollectorMetrics;
  retry?: { minMs: number; maxMs: number };
}

/** The first wait between tries once a stop has begun (doubling from there, up to its deadline). */
const STOP_RETRY_MS = 100;

/**
 * Decouples scraping from publishing. Scrapes enqueue messages and return at once; one loop
 * publishes them in batches, retrying with exponential backoff while the queue is slow or down
 * (ids are deterministic, so a retry that had in fact succeeded is a duplicate the queue drops).
 * The buffer is bounded: when full, the oldest messages not being published are dropped, counted
 * in collector_samples_dropped_total. Scraping is never blocked. A batch the queue refuses outright
 * (a 4xx other than 408 and 429) is published again a message at a time, so that only the message
 * it refuses is dropped. A stop cuts a backoff short and goes on publishing, and retrying, until
 * its deadline.
 */
export class Publisher {
  private buffer: OutgoingMessage[] = [];
  private inFlight = 0;
  private buffered = 0;
  private bufferedBytes = 0;
  /** Ends the loop's wait for work: new messages, or a stop. */
  private wake: (() => void) | undefined;
  /** Ends a backoff early: only a stop does (new messages must not hurry a queue that is down). */
  private interrupt: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private stopping = false;
  /** When stopping, the time (performance.now) after which the loop gives up. */
  private deadline = Infinity;
  /**
   * Messages at the front to publish one at a time: those of a batch the queue refused outright,
   * so that only the message it refuses is dropped, not the others beside it.
   */
  private isolate = 0;
  /** Aborts the publish in flight when a stop reaches its deadline. */
  private readonly cutOff = new AbortController();
  private retryMs: number;
  /** Totals since start, for tests and logs. */
  readonly totals = { published: 0, dropped: 0 };

  constructor(private readonly options: PublisherOptions) {
    this.retryMs = options.retry?.minMs ?? 100;
  }

  get bufferedSamples(): number {
    return this.buffered;
  }

  /** The JSON characters of the messages held (one byte each, but for non-ASCII text). */
  get heldBytes(): number {
    return this.bufferedBytes;
  }

  enqueue(messages: OutgoingMessage[]): void {
    if (this.stopping) {
      this.drop(messages, 'shutdown');
      return;
    }
    for (const message of messages) {
      this.buffer.push(message);
      this.buffered += message.samples;
      this.bufferedBytes += message.json.length;
    }
    while (
      (this.buffered > this.options.maxBufferedSamples ||
        this.bufferedBytes > this.options.maxBufferedBytes) &&
      this.buffer.length > this.inFlight
    ) {
      const [oldest] = this.buffer.splice(this.inFlight, 1);
      if (!oldest) break;
      this.buffered -= oldest.samples;
      this.bufferedBytes -= oldest.json.length;
      this.drop([oldest], 'buffer_full');
    }
    this.setGauges();
    this.wake?.();
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Publishes what it can until `timeoutMs`, then counts the rest as dropped. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.deadline = performance.now() + timeoutMs;
    // Backoff starts over, and short: the time left is, and the queue may be back any moment. A
    // publish in flight now that fails waits this too, not the backoff it was sent under.
    this.retryMs = Math.min(this.options.retry?.minMs ?? STOP_RETRY_MS, STOP_RETRY_MS);
    this.wake?.();
    this.interrupt?.();
    await waitAtMost(this.loop, timeoutMs);
    // A publish still in flight at the deadline is cut off, so that what it carried is either
    // published (it answered first) or counted below, never neither.
    this.cutOff.abort();
    await this.loop;
    this.drop(this.buffer.splice(0), 'shutdown');
    this.buffered = 0;
    this.bufferedBytes = 0;
    this.setGauges();
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
      if (performance.now() >= this.deadline) return;
      const batch = this.buffer.slice(0, this.isolate > 0 ? 1 : this.options.messagesPerPublish);
      this.inFlight = batch.length;
      const samples = batch.reduce((sum, m) => sum + m.samples, 0);
      const started = performance.now();
      try {
        // A span per publish: the queue's request and its `queue.publish` are its children.
        await withSpan(
          tracer,
          'collector.publish',
          {
            'messaging.destination.name': topic,
            'messaging.batch.message_count': batch.length,
            'collector.samples': samples,
          },
          () =>
            client.publishSerialized(
              topic,
              batch.map((m) => m.json),
              this.cutOff.signal,
            ),
          SpanKind.PRODUCER,
        );
        metrics.publishDuration.observe((performance.now() - started) / 1000);
        metrics.published.inc(samples);
        this.totals.published += samples;
        this.retryMs = this.options.retry?.minMs ?? 100;
        this.settle(batch);
      } catch (error) {
        const status = (error as { status?: number }).status;
        metrics.publishErrors.inc();
        if (error instanceof QueueRequestError && error.refusesTheMessages) {
          this.inFlight = 0;
          if (batch.length > 1) {
            // One of them is what the queue refuses: publish them one at a time to find it.
            logger.warn(
              { err: error, messages: batch.length },
              'queue rejected a batch; publishing its messages one at a time',
            );
            this.isolate = batch.length;
            continue;
          }
          // The queue refuses this message outright; retrying would block everything behind it.
          logger.error({ err: error, messages: 1, samples }, 'queue rejected a message; dropping it');
          this.settle(batch);
          this.drop(batch, 'rejected');
          continue;
        }
        this.inFlight = 0;
        if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429)
          logger.error(
            { err: error, status, bufferedSamples: this.buffered },
            status === 404
              ? 'the queue has no publish endpoint at this address (QUEUE_URL?); keeping samples and retrying'
              : status === 401 || status === 403
                ? "the queue refuses this collector's credential (SERVICE_TOKEN?); keeping samples and retrying"
                : "the queue refuses this collector's requests (not their messages); keeping samples and retrying",
          );
        // Stopping, the loop goes on trying until the deadline: the queue may be back any moment.
        const left = this.deadline - performance.now();
        if (left <= 0) return;
        const wait = Math.min(this.retryMs * (0.5 + Math.random() / 2), left);
        logger.warn(
          { err: error, retryInMs: Math.round(wait), bufferedSamples: this.buffered },
          'publish failed; retrying',
        );
        await this.backoff(wait);
        this.retryMs = Math.min(this.retryMs * 2, max);
      }
    }
  }

  /** Waits `ms`, or less if a stop begins meanwhile (so that it tries again at once). */
  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.interrupt = () => {
        clearTimeout(timer);
        resolve();
      };
    }).finally(() => (this.interrupt = undefined));
  }

  /** Removes a published (or rejected) batch from the front of the buffer. */
  private settle(batch: OutgoingMessage[]): void {
    this.buffer.splice(0, batch.length);
    this.inFlight = 0;
    this.isolate = Math.max(0, this.isolate - batch.length);
    for (const m of batch) {
      this.buffered -= m.samples;
      this.bufferedBytes -= m.json.length;
    }
    this.setGauges();
  }

  private setGauges(): void {
    this.options.metrics.buffered.set(this.buffered);
    this.options.metrics.bufferedBytes.set(this.bufferedBytes);
  }

  private drop(messages: OutgoingMessage[], reason: 'buffer_full' | 'rejected' | 'shutdown'): void {
    const samples = messages.reduce((sum, m) => sum + m.samples, 0);
    const metadata = messages.reduce((sum, m) => sum + (m.metadata ?? 0), 0);
    for (const message of messages) message.onDropped?.();
    if (samples > 0) {
      this.totals.dropped += samples;
      this.options.metrics.dropped.inc({ reason }, samples);
    }
    if (metadata > 0) this.options.metrics.metadataDropped.inc({ reason }, metadata);
    if (samples > 0 || metadata > 0)
      this.options.logger.warn({ samples, metadata, reason }, 'dropped samples');
  }
}
