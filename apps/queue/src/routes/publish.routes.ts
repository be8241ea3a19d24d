import {
  AppError,
  PayloadTooLargeError,
  topicName,
  UnsupportedMediaTypeError,
  ValidationError,
} from '@gpu-telemetry/model';
import { apiRouter, validate } from '@gpu-telemetry/service-kit';
import express, { type ErrorRequestHandler, type RequestHandler, type Router } from 'express';
import { z } from 'zod';
import {
  type PublishLimits,
  PublishRefused,
  readPublishBody,
  type RefusalReason,
} from '../services/publish-body';
import type { QueueMetrics } from '../services/queue.metrics';
import type { QueueService } from '../services/queue.service';

export interface PublishRouteOptions extends PublishLimits {
  /** Largest publish body, in bytes. */
  bodyLimit: number;
  metrics: Pick<QueueMetrics, 'publishRefused'>;
}

/** Why a publish was refused: what the body reader found, or what came before or after it. */
export type PublishRefusal =
  | RefusalReason
  | 'invalid_topic'
  | 'unsupported_media_type'
  | 'body_too_large'
  | 'unreadable_body'
  | 'unstorable_value';

const topicParams = z.object({ topic: topicName });
const NO_BODY = Buffer.alloc(0);

/** A declared body over the limit, shaped like the body reader's own 413 so that both read alike. */
class BodyTooLarge extends Error {
  readonly type = 'entity.too.large';
  readonly status = 413;
  constructor(readonly limit: number) {
    super('request entity too large');
  }
}

/**
 * POST /v1/topics/{topic}/messages, which reads its own body, so it is mounted before the
 * service's JSON parser: its bytes, up to bodyLimit (a larger Content-Length is refused before a
 * byte is read, a stream that passes it as soon as it does), are checked by readPublishBody
 * before anything is built from them, and its payloads are stored as those bytes.
 */
export function publishRoutes(queue: QueueService, options: PublishRouteOptions): Router {
  const router = apiRouter();
  const readBody = express.raw({
    limit: options.bodyLimit,
    type: ['application/json', 'application/*+json'],
    inflate: false,
  });

  // What is wrong before the body is read is refused before it is read, and answered at once (the
  // body reader would read a body it refuses to its end before answering).
  const checkRequest: RequestHandler = (req, _res, next) => {
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

  const publish: RequestHandler<{ topic: string }> = async (req, res) => {
    const batch = readPublishBody(Buffer.isBuffer(req.body) ? req.body : NO_BODY, options);
    res.status(201).json(await queue.publish(req.params.topic, batch));
  };

  router.post('/v1/topics/:topic/messages', checkRequest, readBody, publish, countRefusal);
  return router;
}

function refusalReason(error: unknown): PublishRefusal | undefined {
  if (error instanceof PublishRefused) return error.reason;
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
