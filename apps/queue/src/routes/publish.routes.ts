import {
  AppError,
  PayloadTooLargeError,
  topicName,
  UnsupportedMediaTypeError,
  ValidationError,
} from '@gpu-telemetry/model';
import type { IncomingMessage } from 'node:http';
import { apiRouter, notJsonBody, validate } from '@gpu-telemetry/service-kit';
import type { ErrorRequestHandler, RequestHandler, Router } from 'express';
import { z } from 'zod';
import {
  type PublishLimits,
  PublishRefused,
  readPublishBody,
  type RefusalReason,
} from '../services/publish-body';
import { type PublishMemory, PublishMemoryFull, type PublishReservation } from '../services/publish-memory';
import type { QueueMetrics } from '../services/queue.metrics';
import type { QueueService } from '../services/queue.service';

export interface PublishRouteOptions extends PublishLimits {
  /** Largest publish body, in bytes. */
  bodyLimit: number;
  metrics: Pick<QueueMetrics, 'publishRefused'>;
  /** The body bytes all publishes together may hold at once. */
  memory: PublishMemory;
  /** How long a body has to arrive whole (QUEUE_BODY_TIMEOUT); past it, 408. */
  bodyTimeoutMs: number;
}

/** Why a publish was refused: what the body reader found, or what came before or after it. */
export type PublishRefusal =
  | RefusalReason
  | 'invalid_topic'
  | 'unsupported_media_type'
  | 'body_too_large'
  | 'unreadable_body'
  | 'unstorable_value'
  | 'memory_full'
  | 'slow_body';

const topicParams = z.object({ topic: topicName });

/** A declared body over the limit, shaped like the body reader's own 413 so that both read alike. */
class BodyTooLarge extends Error {
  readonly type = 'entity.too.large';
  readonly status = 413;
  constructor(readonly limit: number) {
    super('request entity too large');
  }
}

/** A body not whole within QUEUE_BODY_TIMEOUT: the connection is closed after the answer. */
class SlowBody extends AppError {
  readonly reason = 'slow_body';
  constructor(timeoutMs: number) {
    const message = `did not arrive whole within ${timeoutMs / 1000} s (QUEUE_BODY_TIMEOUT)`;
    super(408, `The body ${message}.`, {
      errors: [{ field: 'body', message }],
      headers: { connection: 'close' },
    });
  }
}

/** Like body-parser's errors for a body that did not arrive whole, so that both read alike. */
class BodyUnreadable extends Error {
  readonly type = 'request.aborted';
  readonly status = 400;
  constructor() {
    super('request aborted');
  }
}

/**
 * The body's bytes, up to `limit` (past it, a BodyTooLarge as soon as a byte passes it). The
 * body grows `reservation` as it arrives, declared length or not, and is refused with a
 * PublishMemoryFull once it would pass the budget: a client that declares a large body and sends
 * nothing holds nothing. A body not whole within `timeoutMs` is a SlowBody. On refusal nothing
 * more is kept: the rest is read and dropped, so the answer can be sent (and the connection used
 * again, but after a SlowBody, which closes it).
 */
function readBody(
  req: IncomingMessage,
  limit: number,
  reservation: PublishReservation,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => refuse(new SlowBody(timeoutMs)), timeoutMs);
    const stop = () => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      chunks = [];
    };
    const refuse = (error: Error) => {
      stop();
      // What the body still holds is given back at once, not when the answer is sent.
      reservation.release();
      // Dropped unread from here on; a client that hangs up is no error then.
      req.on('error', () => undefined).resume();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return refuse(new BodyTooLarge(limit));
      try {
        reservation.grow(chunk.length);
      } catch (error) {
        return refuse(error as Error);
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      const body = Buffer.concat(chunks, size);
      stop();
      resolve(body);
    };
    const onError = () => refuse(new BodyUnreadable());
    const onClose = () => {
      if (!req.complete) onError();
    };
    req.on('data', onData).once('end', onEnd).once('error', onError).once('close', onClose);
  });
}

/**
 * POST /v1/topics/{topic}/messages, which reads its own body and checks its own media type, so it
 * is mounted before the service's media-type check and JSON parser (every refusal passes through
 * its count): its bytes, up to bodyLimit (a larger Content-Length is refused before a byte is
 * read, a stream that passes it as soon as it does), within the budget `memory` shares among all
 * publishes (each body's bytes counted as they arrive) and within bodyTimeoutMs, are checked by
 * readPublishBody before anything is built from them, and its payloads are stored as those bytes.
 */
export function publishRoutes(queue: QueueService, options: PublishRouteOptions): Router {
  const router = apiRouter();

  // What is wrong before the body is read is refused before it is read, and answered at once.
  const checkRequest: RequestHandler = (req, _res, next) => {
    const notJson = notJsonBody(req);
    if (notJson) throw notJson;
    validate(topicParams, req.params);
    if (Number(req.headers['content-length']) > options.bodyLimit) throw new BodyTooLarge(options.bodyLimit);
    // JSON is UTF-8 (RFC 8259), and payloads are stored as the bytes sent.
    const type = req.headers['content-type'] ?? '';
    if (/charset=(?!"?utf-?8)/i.test(type))
      throw new UnsupportedMediaTypeError(`Send JSON as UTF-8, not ${type}.`);
    // A compressed body would cost the limit in memory whatever its size on the wire.
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'identity') {
      const message = `must be identity (send the body uncompressed), not ${encoding}`;
      throw new AppError(415, `Content-Encoding ${message}.`, {
        errors: [{ field: 'content-encoding', message }],
      });
    }
    next();
  };

  // One line and one count per refusal; the service's error mapper then answers it.
  const countRefusal: ErrorRequestHandler = (error, req, _res, next) => {
    const reason = refusalReason(error);
    if (reason) {
      options.metrics.publishRefused.inc({ reason });
      req.log.warn(
        {
          reason,
          topic: req.params['topic'],
          bytesIn: Buffer.isBuffer(req.body) ? req.body.length : Number(req.headers['content-length'] ?? 0),
          field: error instanceof AppError ? error.errors?.[0]?.field : 'body',
        },
        'publish refused',
      );
    }
    next(error);
  };

  // The body's bytes are held from before it is read until the publish is answered or fails (the
  // client gone or not): the reservation is given back on every way out.
  const publish: RequestHandler<{ topic: string }> = async (req, res) => {
    const reservation = options.memory.reserve();
    try {
      const body = await readBody(req, options.bodyLimit, reservation, options.bodyTimeoutMs);
      req.body = body;
      const batch = readPublishBody(body, options);
      res.status(201).json(await queue.publish(req.params.topic, batch));
    } finally {
      reservation.release();
    }
  };

  router.post('/v1/topics/:topic/messages', checkRequest, publish, countRefusal);
  return router;
}

function refusalReason(error: unknown): PublishRefusal | undefined {
  if (error instanceof PublishRefused || error instanceof PublishMemoryFull || error instanceof SlowBody)
    return error.reason;
  if (error instanceof ValidationError) return 'invalid_topic';
  if (error instanceof AppError && error.status === 415) return 'unsupported_media_type';
  if (error instanceof PayloadTooLargeError) return 'payload_too_large';
  const { type, code } = error as { type?: unknown; code?: unknown };
  // The body reader's errors (body-parser's raw-body).
  if (type === 'entity.too.large') return 'body_too_large';
  if (type === 'request.aborted' || type === 'request.size.invalid') return 'unreadable_body';
  // A Postgres data exception: a payload that is JSON but not storable (a lone surrogate escape).
  if (typeof code === 'string' && code.length === 5 && code.startsWith('22')) return 'unstorable_value';
  return undefined;
}
