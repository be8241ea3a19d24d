import { context, diag, TraceFlags } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, getNumberFromEnv, suppressTracing } from '@opentelemetry/core';
import type { IOtlpExportDelegate, OTLPExporterNodeConfigBase } from '@opentelemetry/otlp-exporter-base';
import {
  convertLegacyHttpOptions,
  createOtlpHttpExportDelegate,
} from '@opentelemetry/otlp-exporter-base/node-http';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { spanExportStats } from './span-export-stats';

/** Spans already encoded, with how many there are (for the exporter's own metrics). */
interface EncodedBatch {
  body: Uint8Array;
  spans: number;
}

export interface OtlpSpanProcessorOptions {
  /** Spans per POST (default OTEL_BSP_MAX_EXPORT_BATCH_SIZE, else 512). */
  maxExportBatchSize?: number;
  /** Spans held, encoded or not, before new ones are dropped (OTEL_BSP_MAX_QUEUE_SIZE, else 2048). */
  maxQueueSize?: number;
  /** Longest a span waits before it is sent (OTEL_BSP_SCHEDULE_DELAY, else 5000 ms). */
  scheduledDelayMillis?: number;
  /** Ended spans that make it worth encoding them on the next turn of the event loop (16). */
  minSlice?: number;
}

/**
 * Exports spans over OTLP/HTTP protobuf, encoding them as they end instead of a whole batch at a
 * time: the SDK's batch processor and exporter encode a full batch synchronously, about 5 µs a
 * span on a busy process (0.7 ms for 128), and every request that arrives meanwhile waits.
 *
 * Once `minSlice` spans have ended, the next turn of the event loop encodes every span ended so
 * far as one slice (16 spans: about 75 µs). Under load more spans end per turn and slices grow
 * with them, so encoding always keeps up with the spans made. When a batch's worth is encoded it
 * is POSTed at once. A slice is a whole `ExportTraceServiceRequest`; protobuf defines concatenated
 * messages as their merge, so the body is one valid request whose `resource_spans` holds one entry
 * per slice. Endpoint, headers, compression, timeout and retries come from the same
 * `OTEL_EXPORTER_OTLP_*` settings and code as the SDK's exporter; batch size, queue bound and delay
 * from the batch processor's `OTEL_BSP_*`.
 */
export class OtlpSpanProcessor implements SpanProcessor {
  private readonly delegate: IOtlpExportDelegate<EncodedBatch>;
  private readonly maxExportBatchSize: number;
  private readonly maxQueueSize: number;
  private readonly minSlice: number;
  private readonly timer: NodeJS.Timeout;
  private ended: ReadableSpan[] = [];
  private slices: Uint8Array[] = [];
  private encodedSpans = 0;
  private encodeScheduled = false;
  private droppedSinceSend = 0;
  private closed = false;

  /** `config` is the SDK exporter's (url, headers, compression, timeout), over the environment's. */
  constructor(config: OTLPExporterNodeConfigBase = {}, options: OtlpSpanProcessorOptions = {}) {
    this.delegate = createOtlpHttpExportDelegate<EncodedBatch, unknown>(
      convertLegacyHttpOptions(config, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' }),
      {
        serializeRequest: (batch) => batch.body,
        deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
      },
      'otlp_http_span_exporter',
      { name: 'span', countItems: (batch) => batch.spans },
      config.selfObsMeterProvider,
    );
    // A setting of 0 or less (or not a number) takes the default: a batch of 0 spans would never
    // empty the queue, and flush() would spin on it.
    this.maxExportBatchSize = positive(
      options.maxExportBatchSize ?? getNumberFromEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
      512,
    );
    this.maxQueueSize = Math.max(
      positive(options.maxQueueSize ?? getNumberFromEnv('OTEL_BSP_MAX_QUEUE_SIZE'), 2048),
      this.maxExportBatchSize,
    );
    this.minSlice = options.minSlice ?? 16;
    const delay = positive(options.scheduledDelayMillis ?? getNumberFromEnv('OTEL_BSP_SCHEDULE_DELAY'), 5000);
    this.timer = setInterval(() => void this.flush(), delay);
    this.timer.unref();
  }

  onStart(): void {
    // Nothing to do until the span ends.
  }

  onEnd(span: ReadableSpan): void {
    if (this.closed || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.ended.length + this.encodedSpans >= this.maxQueueSize) {
      spanExportStats.dropped++;
      this.droppedSinceSend++;
      return;
    }
    this.ended.push(span);
    this.scheduleEncode();
  }

  forceFlush(): Promise<void> {
    return this.flush().then(() => this.delegate.forceFlush());
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    await this.forceFlush();
    this.closed = true;
    await this.delegate.shutdown();
  }

  /** Encodes what has ended and sends whatever is encoded, however little. */
  private async flush(): Promise<void> {
    await this.resourceSettled();
    while (this.ended.length > 0 && !this.ended[0]?.resource.asyncAttributesPending) this.encode();
    if (this.encodedSpans > 0) await this.send();
  }

  /**
   * Encodes the ended spans as one slice (a batch at most per turn; the rest on the next), and
   * sends once a batch's worth is encoded.
   */
  private encode(): void {
    if (this.ended.length === 0) return;
    // Resource attributes still being detected (at start-up) would be missing from the encoding.
    if (this.ended[0]?.resource.asyncAttributesPending) {
      void this.resourceSettled().then(() => {
        if (!this.ended[0]?.resource.asyncAttributesPending) this.encode();
      });
      return;
    }
    const spans = this.ended.splice(0, this.maxExportBatchSize);
    try {
      const slice = ProtobufTraceSerializer.serializeRequest(spans);
      if (slice) this.slices.push(slice);
      this.encodedSpans += spans.length;
    } catch (error) {
      spanExportStats.failed += spans.length;
      diag.error('could not encode spans', error);
    }
    if (this.encodedSpans >= this.maxExportBatchSize) void this.send();
    this.scheduleEncode();
  }

  /**
   * Once a slice's worth has ended, encodes on the next turn of the event loop: never inside
   * span.end(), which runs on a request's path.
   */
  private scheduleEncode(): void {
    if (this.ended.length < this.minSlice || this.encodeScheduled) return;
    this.encodeScheduled = true;
    setImmediate(() => {
      this.encodeScheduled = false;
      this.encode();
    });
  }

  private send(): Promise<void> {
    const batch = { body: Buffer.concat(this.slices), spans: this.encodedSpans };
    this.slices = [];
    this.encodedSpans = 0;
    if (this.droppedSinceSend > 0) {
      diag.warn(`dropped ${this.droppedSinceSend} spans: the export queue (${this.maxQueueSize}) was full`);
      this.droppedSinceSend = 0;
    }
    return new Promise((resolve) => {
      // The export's own HTTP request is not traced: a trace of exporting traces would feed itself.
      context.with(suppressTracing(context.active()), () =>
        this.delegate.export(batch, (result: ExportResult) => {
          if (result.code === ExportResultCode.SUCCESS) spanExportStats.exported += batch.spans;
          else spanExportStats.failed += batch.spans;
          if (result.error) diag.error('span export failed', result.error);
          resolve();
        }),
      );
    });
  }

  /** Waits for resource attributes still being detected; a detector that fails is the SDK's to log. */
  private async resourceSettled(): Promise<void> {
    const resource = this.ended[0]?.resource;
    if (resource?.asyncAttributesPending) await resource.waitForAsyncAttributes?.().catch(() => undefined);
  }
}

/** `value` as a whole number of at least 1, or `fallback` when it is not one. */
function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value >= 1 ? Math.floor(value) : fallback;
}
