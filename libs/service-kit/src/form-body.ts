import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { sendsBody } from './json-body';

export const FORM_MEDIA_TYPE = 'application/x-www-form-urlencoded';

/** Why a form body could not be read: 413 too large, 415 not a form (or compressed, or not UTF-8), 400 unreadable. */
export class FormBodyError extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
    this.name = 'FormBodyError';
  }
}

/**
 * Reads an `application/x-www-form-urlencoded` body of at most `limit` bytes into `req.body` as
 * URLSearchParams (empty when there is no body), for routes mounted with `binaryBodyRoutes`: a
 * larger Content-Length is refused before a byte is read, a stream as soon as it passes the
 * limit. Failures reach the route's error handler as a FormBodyError.
 */
export function formBody(options: { limit: number }): RequestHandler {
  const raw = express.raw({ type: FORM_MEDIA_TYPE, limit: options.limit, inflate: false });
  return (req: Request, res: Response, next: NextFunction) => {
    if (!sendsBody(req)) {
      req.body = new URLSearchParams();
      next();
      return;
    }
    if (!req.is(FORM_MEDIA_TYPE)) {
      next(
        new FormBodyError(
          415,
          `send parameters in the query string or as ${FORM_MEDIA_TYPE}, not ${req.headers['content-type'] ?? 'an untyped body'}`,
        ),
      );
      return;
    }
    raw(req, res, (error?: unknown) => {
      if (error) {
        const status = (error as { status?: number }).status;
        const type = (error as { type?: string }).type;
        if (status === 413 || type === 'entity.too.large')
          next(new FormBodyError(413, `the body is larger than ${options.limit} bytes`));
        else if (status === 415) next(new FormBodyError(415, (error as Error).message));
        else next(new FormBodyError(400, `the body could not be read: ${(error as Error).message}`));
        return;
      }
      const bytes = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        next(new FormBodyError(415, 'the body is not UTF-8'));
        return;
      }
      req.body = new URLSearchParams(text);
      next();
    });
  };
}
