import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { AppError } from '@gpu-telemetry/model';
import { type QueueClient, QueueRequestError } from '@gpu-telemetry/queue-client';
import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import type { CollectorMetrics } from '../collector.metrics';
import { storableTimes } from '../parsing/storable-time';
import { metadataMessages, type OutgoingMessage } from '../publishing/message-builder';
import { buildSeriesMessages } from './series-messages';
import { SnappyError, snappyDecode, SnappyTooLargeError } from './snappy';
import { decodeWriteRequest, WriteRequestError } from './write-request';

export interface RemoteWriteOptions {
  queue: Pick<QueueClient, 'publishSerialized'>;
  topic: string;
  logger: Logger;
  metrics: CollectorMetrics;
  /** Largest compressed body (REMOTE_WRITE_MAX_BODY). */
  maxBodyBytes: number;
  /** Largest request once decompressed (REMOTE_WRITE_MAX_DECOMPRESSED), checked before decoding. */
  maxDecompressedBytes: number;
  /** Most series and samples in one request (REMOTE_WRITE_MAX_SERIES, REMOTE_WRITE_MAX_SAMPLES). */
  maxSeries: number;
  maxSamples: number;
  /** Requests decoded and published at once (REMOTE_WRITE_CONCURRENCY); more are a 503. */
  concurrency: number;
  /** How long a body has to arrive whole (REMOTE_WRITE_BODY_TIMEOUT); past it, 408. */
  bodyTimeoutMs: number;
  /** Samples older than this are refused (TELEMETRY_RETENTION: the streamer stores none); 0: any age. */
  retentionMs?: number;
  now?: () => number;
}

export interface WriteResult {
  series: number;
  samples: number;
  staleMarkers: number;
  messages: number;
  /** Messages the queue already had: a retried request. */
  duplicates: number;
  /** What could not be stored and was passed over; the rest of the request was stored. */
  refused: { series: number; samples: number; reasons: string[] };
  /** What the queue refused to take (a message over its payload limit); the rest is stored. */
  lost: { messages: number; total: number; samples: number; staleMarkers: number; first?: string };
}

/** Why a write was answered as it was: collector_remote_write_requests_total{outcome}. */
export type WriteOutcome =
  | 'stored'
  | 'malformed'
  | 'too_large'
  | 'unsupported'
  | 'overloaded'
  | 'queue_unavailable'
  | 'queue_refused'
  | 'partial'
  | 'slow_body'
  | 'error';

class WriteRefused extends AppError {
  constructor(
    status: number,
    detail: string,
    readonly outcome: WriteOutcome,
    options: { headers?: Record<string, string>; field?: string } = {},
  ) {
    // The request part at fault, named as for any other 4xx: a header, or the body.
    const errors = options.field ? [{ field: options.field, message: detail }] : undefined;
    super(status, detail, { headers: options.headers, errors });
  }
}

/** Messages per publish request: a few MB at most (200 KiB each). */
const MESSAGES_PER_PUBLISH = 32;
const tracer = getTracer('collector');

/** Bodies read at once, per place to store them (REMOTE_WRITE_CONCURRENCY). */
const READS_PER_STORE = 4;

/**
 * Prometheus remote write 1.0 in: a snappy-compressed protobuf WriteRequest becomes series
 * messages on the telemetry topic, answered only once the queue has them (durable), with
 * Prometheus' status contract: 204 stored; 4xx never worth retrying (malformed, too large, not
 * remote write 1.0), with the reason; 503 with Retry-After while the queue cannot take them or
 * too many writes are in hand, which Prometheus retries. Every limit is checked before the memory
 * it guards is taken: the body as it streams, the decompressed size from snappy's preamble, the
 * series and samples as they are decoded.
 */
export class RemoteWriteService {
  /** Writes being stored (decoded, published): at most `concurrency`. */
  private inFlight = 0;
  /** Bodies being read: at most READS_PER_STORE x `concurrency`, apart from the stores. */
  private reading = 0;

  constructor(private readonly options: RemoteWriteOptions) {}

  async receive(
    headers: IncomingHttpHeaders,
    read: (limit: number, deadlineMs: number) => Promise<Buffer>,
  ): Promise<WriteResult> {
    const { metrics, logger } = this.options;
    const started = performance.now();
    return withSpan(tracer, 'collector.remote_write', {}, async (span) => {
      let outcome: WriteOutcome = 'stored';
      try {
        const result = await this.write(headers, read);
        const { lost } = result;
        // Counted as published: what the queue took.
        const stored = result.samples - lost.samples;
        const storedStale = result.staleMarkers - lost.staleMarkers;
        metrics.remoteWriteSamples.inc({ kind: 'value' }, stored - storedStale);
        metrics.remoteWriteSamples.inc({ kind: 'stale' }, storedStale);
        span.setAttributes({
          'remote_write.series': result.series,
          'remote_write.samples': result.samples,
          'remote_write.messages': result.messages,
          'remote_write.duplicates': result.duplicates,
        });
        logger.debug(result, 'remote write stored');
        const { refused } = result;
        if (refused.series > 0 || refused.samples > 0)
          metrics.remoteWriteIgnored.inc({ kind: 'refused' }, refused.samples);
        if (lost.messages > 0) {
          // As the publisher counts a message the queue refuses.
          metrics.dropped.inc({ reason: 'rejected' }, lost.samples);
          logger.warn(
            { refused: lost.messages, messages: lost.total, samples: lost.samples, first: lost.first },
            'remote write: the queue refused messages',
          );
          throw new WriteRefused(
            400,
            `The queue refuses ${lost.messages} of the ${lost.total} messages of this write (${lost.samples} samples; ` +
              `the rest, ${stored} samples, are stored): ${lost.first}; is QUEUE_MAX_PAYLOAD under 256kb?`,
            'queue_refused',
            { field: 'body' },
          );
        }
        if (refused.series > 0 || refused.samples > 0) {
          // The rest is stored: a 400, which Prometheus does not retry, says what was not.
          throw new WriteRefused(
            400,
            `Stored ${result.samples} samples of ${result.series} series; ${refused.series} series and ` +
              `${refused.samples} samples could not be stored and were passed over: ${refused.reasons.join('; ')}.`,
            'partial',
            { field: 'body' },
          );
        }
        return result;
      } catch (error) {
        if (error instanceof WriteRefused) outcome = error.outcome;
        else if (error instanceof AppError) outcome = error.status === 413 ? 'too_large' : 'malformed';
        else outcome = 'error';
        if (error instanceof AppError) {
          if (error.status < 500) logger.warn({ outcome, reason: error.message }, 'remote write refused');
          else logger.warn({ outcome, reason: error.message }, 'remote write not stored; the sender retries');
        }
        throw error;
      } finally {
        span.setAttribute('remote_write.outcome', outcome);
        metrics.remoteWriteRequests.inc({ outcome });
        metrics.remoteWriteDuration.observe({ outcome }, (performance.now() - started) / 1000);
      }
    });
  }

  private async write(
    headers: IncomingHttpHeaders,
    read: (limit: number, deadlineMs: number) => Promise<Buffer>,
  ): Promise<WriteResult> {
    checkHeaders(headers);
    // A body is read before it takes a place to be stored: one that trickles in (or many) holds
    // a reading place for at most REMOTE_WRITE_BODY_TIMEOUT (Prometheus sends a body it holds in
    // memory, in well under a second), never the stores of writes that have arrived.
    const { concurrency } = this.options;
    if (this.reading >= concurrency * READS_PER_STORE) {
      throw new WriteRefused(
        503,
        `${concurrency * READS_PER_STORE} remote write bodies are being read already; retry shortly.`,
        'overloaded',
        { headers: { 'retry-after': '1' } },
      );
    }
    this.reading++;
    let body: Buffer;
    try {
      body = await read(this.options.maxBodyBytes, this.options.bodyTimeoutMs);
    } catch (error) {
      if (error instanceof AppError && error.status === 408)
        throw new WriteRefused(408, error.message, 'slow_body', { headers: error.options.headers });
      if (error instanceof AppError && error.status === 413)
        throw new WriteRefused(413, error.message, 'too_large', { field: 'body' });
      throw error;
    } finally {
      this.reading--;
    }
    if (this.inFlight >= concurrency) {
      throw new WriteRefused(
        503,
        `${concurrency} remote writes are being stored already; retry shortly.`,
        'overloaded',
        { headers: { 'retry-after': '1' } },
      );
    }
    this.inFlight++;
    try {
      let decompressed: Buffer;
      try {
        decompressed = snappyDecode(body, this.options.maxDecompressedBytes);
      } catch (error) {
        if (error instanceof SnappyTooLargeError)
          throw new WriteRefused(413, `The body is too large: ${error.message}.`, 'too_large', {
            field: 'body',
          });
        if (error instanceof SnappyError)
          throw new WriteRefused(400, `The body is not a snappy block: ${error.message}.`, 'malformed', {
            field: 'body',
          });
        throw error;
      }
      const times = storableTimes((this.options.now ?? Date.now)(), this.options.retentionMs);
      let messages: OutgoingMessage[];
      let decoded: ReturnType<typeof decodeWriteRequest>;
      try {
        decoded = decodeWriteRequest(decompressed, {
          maxSeries: this.options.maxSeries,
          maxSamples: this.options.maxSamples,
          maxTimestampMs: times.maxMs,
          minTimestampMs: times.minMs,
        });
        const hash = createHash('sha256').update(decompressed).digest('hex');
        messages = [
          ...buildSeriesMessages(hash, decoded.series),
          ...metadataMessages('remote-write', hash, decoded.metadata),
        ];
      } catch (error) {
        if (error instanceof WriteRequestError) {
          throw new WriteRefused(
            error.status,
            `The body is not a WriteRequest this receiver can store: ${error.message}.`,
            error.status === 413 ? 'too_large' : 'malformed',
            { field: 'body' },
          );
        }
        throw error;
      }
      const { duplicates, lost } = await this.publish(messages);
      const { exemplars, histograms, metadata } = decoded.ignored;
      if (exemplars) this.options.metrics.remoteWriteIgnored.inc({ kind: 'exemplar' }, exemplars);
      if (histograms) this.options.metrics.remoteWriteIgnored.inc({ kind: 'histogram' }, histograms);
      if (metadata) this.options.metrics.remoteWriteIgnored.inc({ kind: 'metadata' }, metadata);
      this.options.metrics.metadataSent.inc(decoded.metadata.length);
      return {
        series: decoded.series.length,
        samples: decoded.samples,
        staleMarkers: decoded.staleMarkers,
        messages: messages.length,
        duplicates,
        refused: decoded.refused,
        lost,
      };
    } finally {
      this.inFlight--;
    }
  }

  /**
   * Publishes every message, a few at a time; returns how many the queue already had, and what it
   * refused. A group the queue refuses as such (a payload over QUEUE_MAX_PAYLOAD) is published again
   * a message at a time, so that only what it refuses is left out; the write is then a 400 (sending
   * it again cannot help), answered once the rest is stored.
   */
  private async publish(
    messages: OutgoingMessage[],
  ): Promise<{ duplicates: number; lost: WriteResult['lost'] }> {
    let duplicates = 0;
    const lost: WriteResult['lost'] = { messages: 0, total: messages.length, samples: 0, staleMarkers: 0 };
    const send = async (batch: OutgoingMessage[]): Promise<boolean> => {
      try {
        const result = await this.options.queue.publishSerialized(
          this.options.topic,
          batch.map((m) => m.json),
        );
        duplicates += result.duplicates;
        return true;
      } catch (error) {
        if (error instanceof QueueRequestError && error.refusesTheMessages) return false;
        // Down, slow, overloaded, or refusing this collector's credential: worth a retry later.
        this.options.logger.warn({ err: error, messages: batch.length }, 'remote write: publish failed');
        throw new WriteRefused(
          503,
          'The queue cannot take the samples right now; retry shortly.',
          'queue_unavailable',
          { headers: { 'retry-after': '5' } },
        );
      }
    };
    for (let i = 0; i < messages.length; i += MESSAGES_PER_PUBLISH) {
      const batch = messages.slice(i, i + MESSAGES_PER_PUBLISH);
      if (await send(batch)) continue;
      for (const message of batch) {
        if (await send([message])) continue;
        lost.messages++;
        lost.samples += message.samples;
        lost.staleMarkers += message.staleMarkers ?? 0;
        lost.first ??= `message ${message.id} (${Buffer.byteLength(message.json)} bytes)`;
      }
    }
    return { duplicates, lost };
  }
}

/**
 * Remote write 1.0 only: `Content-Type: application/x-protobuf` (no `proto=` but the 1.0 message),
 * `Content-Encoding: snappy`. Missing headers are taken as 1.0 and snappy, as Prometheus' own
 * receiver does; anything else is a 415 naming what was sent.
 */
function checkHeaders(headers: IncomingHttpHeaders): void {
  const type = headers['content-type'];
  if (type !== undefined) {
    const [media, ...parameters] = type.split(';').map((part) => part.trim());
    if (media?.toLowerCase() !== 'application/x-protobuf') {
      throw new WriteRefused(
        415,
        `Send the WriteRequest as application/x-protobuf, not ${type}.`,
        'unsupported',
        { field: 'content-type' },
      );
    }
    const proto = parameters.find((p) => p.toLowerCase().startsWith('proto='))?.slice(6);
    if (proto !== undefined && proto !== 'prometheus.WriteRequest') {
      throw new WriteRefused(
        415,
        `Only remote write 1.0 (prometheus.WriteRequest) is accepted, not ${proto}.`,
        'unsupported',
        { field: 'content-type' },
      );
    }
  }
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'snappy') {
    throw new WriteRefused(
      415,
      `Compress the WriteRequest with snappy (block format), not ${encoding}.`,
      'unsupported',
      { field: 'content-encoding' },
    );
  }
  const version = headers['x-prometheus-remote-write-version'];
  if (typeof version === 'string' && !version.startsWith('0.1.')) {
    throw new WriteRefused(
      415,
      `Only remote write 1.0 (X-Prometheus-Remote-Write-Version 0.1.0) is accepted, not ${version}.`,
      'unsupported',
      { field: 'x-prometheus-remote-write-version' },
    );
  }
}
