import type { IncomingMessage } from 'node:http';
import { UnsupportedMediaTypeError } from '@gpu-telemetry/model';
import type { Request } from 'express';

/** The media types a JSON body may be sent as. */
export const JSON_MEDIA_TYPES = ['application/json', 'application/*+json'];

/** Whether a request sends a body: a length above zero, or one that streams (chunked). */
export function sendsBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** A GET's or HEAD's body means nothing in HTTP: it is not read, as a proxy would not read it. */
export function bodyMeansNothing(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD';
}

/**
 * The 415 for a request whose body is not JSON (no content type, or another one), where it would
 * otherwise read as a confusing "field required" or "not valid JSON"; undefined when it is JSON or
 * there is no body that means anything.
 */
export function notJsonBody(req: Request): UnsupportedMediaTypeError | undefined {
  if (!sendsBody(req) || bodyMeansNothing(req.method) || req.is(JSON_MEDIA_TYPES)) return undefined;
  return new UnsupportedMediaTypeError(
    `Send the body as application/json, not ${req.headers['content-type'] ?? 'no content type'}.`,
  );
}
