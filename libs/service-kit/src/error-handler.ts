import type { ErrorRequestHandler } from 'express';
import { AppError } from '@gpu-telemetry/model';
import type { Logger } from 'pino';
import { ZodError } from 'zod';
import { paramNamed, type PathTemplate, undecodableSegment } from './path-templates';
import { bodyMeansNothing } from './json-body';
import { fieldErrors, sendProblem } from './problem';

const PG_UNAVAILABLE = /^(08|53|57P0[1-3])/; // connection failures, out of resources, shutting down
const NODE_UNAVAILABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

interface BodyParserError extends Error {
  type?: string;
  status?: number;
  limit?: number;
}

/**
 * The one error mapper of a service. Bad input is a 4xx that names the field; a database that is
 * down is a 503 the client can retry; anything else is a 500 that leaks nothing and is logged
 * with the request id.
 */
export function errorHandler(
  logger: Logger,
  templates: readonly PathTemplate<unknown>[] = [],
): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    if (res.headersSent) {
      // Too late for a problem: the answer has begun. Cut it off (the client sees a broken
      // answer, not a complete wrong one), and say why.
      logger.error({ err: error, requestId: res.locals['requestId'] }, 'failed after the answer began');
      req.socket.destroy();
      return;
    }
    if (error instanceof AppError) {
      return sendProblem(res, error.status, error.message, {
        errors: error.errors,
        headers: error.options.headers,
        extensions: error.extensions,
      });
    }
    const segment = undecodableSegment(error);
    if (segment !== undefined) {
      const field = paramNamed(templates, req.path, segment);
      const message = `is not percent-encoded UTF-8: ${JSON.stringify(segment)}`;
      return sendProblem(res, 400, `${field}: ${message}`, { errors: [{ field, message }] });
    }
    if (error instanceof ZodError) {
      const errors = fieldErrors(error);
      return sendProblem(res, 400, `${errors[0]?.field}: ${errors[0]?.message}`, { errors });
    }
    const bodyError = error as BodyParserError;
    switch (bodyError.type) {
      case 'entity.parse.failed':
        return sendProblem(res, 400, `The body is not valid JSON: ${bodyError.message}`, {
          errors: [{ field: 'body', message: 'is not valid JSON' }],
        });
      case 'entity.too.large':
        return sendProblem(res, 413, `The body is larger than the ${bodyError.limit}-byte limit.`, {
          errors: [{ field: 'body', message: `must be at most ${bodyError.limit} bytes` }],
        });
      case 'encoding.unsupported':
        return sendProblem(res, 415, bodyError.message, {
          errors: [{ field: 'content-encoding', message: 'must be gzip, deflate, br or identity' }],
        });
      case 'charset.unsupported':
        return sendProblem(res, 415, bodyError.message, {
          errors: [{ field: 'content-type', message: bodyError.message }],
        });
      case 'request.aborted':
      case 'request.size.invalid':
        return sendProblem(res, 400, bodyError.message, {
          errors: [{ field: 'body', message: bodyError.message }],
        });
    }
    // A zlib error (Z_... for gzip and deflate, ERR__ERROR_... for brotli) or a Postgres SQLSTATE.
    const code = (error as { code?: unknown }).code;
    if (
      typeof code === 'string' &&
      (code.startsWith('Z_') || code.startsWith('ERR__ERROR_')) &&
      bodyError.status === 400
    ) {
      // A body whose Content-Encoding says gzip, deflate or br, and whose bytes are not.
      const message = `is not valid ${String(req.headers['content-encoding'] ?? 'compressed')} data`;
      return sendProblem(res, 400, `body: ${message}`, { errors: [{ field: 'body', message }] });
    }
    if (
      typeof code === 'string' &&
      code.startsWith('22') &&
      code.length === 5 &&
      !bodyMeansNothing(req.method)
    ) {
      // A data exception: a value Postgres cannot store, e.g. "\u0000" or an unpaired surrogate in JSON.
      // A read has no body to blame: there it is a fault over stored data, a 500 that is logged.
      const message = error instanceof Error ? error.message : 'invalid value';
      return sendProblem(res, 400, `A value in the request cannot be stored: ${message}.`, {
        errors: [{ field: 'body', message }],
      });
    }
    if (isDependencyFailure(error)) {
      logger.warn({ err: error, requestId: res.locals['requestId'] }, 'database unavailable');
      return sendProblem(res, 503, 'The database is unavailable; retry shortly.', {
        headers: { 'Retry-After': '2' },
      });
    }
    if (typeof bodyError.status === 'number' && bodyError.status >= 400 && bodyError.status < 500) {
      return sendProblem(res, bodyError.status, bodyError.message);
    }
    logger.error({ err: error, requestId: res.locals['requestId'] }, 'unhandled error');
    return sendProblem(res, 500, 'An unexpected error occurred; it has been logged with this request id.');
  };
}

/** Postgres down, restarting or out of connections: the client should retry, not see a 500. */
export function isDependencyFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && (PG_UNAVAILABLE.test(code) || NODE_UNAVAILABLE.has(code))) return true;
  const message = error instanceof Error ? error.message : '';
  return /timeout exceeded when trying to connect|Connection terminated|connection error|Client was closed/i.test(
    message,
  );
}
