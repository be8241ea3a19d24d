import type { IncomingMessage, OutgoingHttpHeaders, RequestListener, ServerResponse } from 'node:http';
import { writeProblem } from './problem';

/** An answer as it is about to be sent. */
export interface SentResponse {
  method: string;
  /** The request path, without the query. */
  path: string;
  /** The Express route pattern that answered (`/v1/topics/:topic`), when one did. */
  route?: string;
  status: number;
  contentType?: string;
  /** The whole body; undefined when it was streamed out before the end (then only status and type are checked). */
  body?: Buffer;
}

/** Reads an answer before it is sent; returns what is wrong with it, or undefined. */
export type ResponseCheck = (response: SentResponse) => string | undefined;

type WriteCallback = (error?: Error | null) => void;

const JSON_TYPE = /^application\/(?:[\w.-]+\+)?json\b/i;

/**
 * Holds the answer to `req` until `check` has read it. An answer that `check` finds wrong is sent
 * as a 500 problem naming what is wrong, so the test that caused it fails on the spot. A JSON body
 * is held whole; any other body streams through at once, and only its status and type are checked
 * (a violation there can no longer change the answer, so `check` must also record it).
 */
export function interceptResponse(
  req: IncomingMessage,
  res: ServerResponse,
  check: ResponseCheck,
  route: () => string | undefined = () => undefined,
): void {
  if (req.method === 'HEAD') return;
  const original = {
    writeHead: res.writeHead,
    flushHeaders: res.flushHeaders,
    write: res.write,
    end: res.end,
  };
  const held: Buffer[] = [];
  let streaming = false;

  const restore = () => Object.assign(res, original);
  const sent = (body: Buffer | undefined): SentResponse => ({
    method: req.method ?? 'GET',
    // Express trims req.url inside a router mounted on a path; originalUrl is what was asked.
    path: ((req as { originalUrl?: string }).originalUrl ?? req.url ?? '/').split('?')[0] ?? '/',
    route: route(),
    status: res.statusCode,
    contentType: headerText(res.getHeader('content-type')),
    body,
  });
  const verdict = (response: SentResponse): string | undefined => {
    try {
      return check(response);
    } catch (error) {
      return `the response check failed: ${error instanceof Error ? error.message : String(error)}`;
    }
  };

  // Headers given to writeHead are kept as set headers, so the answer can still be replaced.
  res.writeHead = function writeHead(status: number, ...rest: unknown[]) {
    res.statusCode = status;
    if (typeof rest[0] === 'string') res.statusMessage = rest.shift() as string;
    const headers = rest[0] as OutgoingHttpHeaders | readonly (string | string[])[] | undefined;
    if (Array.isArray(headers)) {
      const flat = headers.flat();
      for (let i = 0; i + 1 < flat.length; i += 2) res.setHeader(String(flat[i]), String(flat[i + 1]));
    } else if (headers) {
      for (const [name, value] of Object.entries(headers))
        if (value !== undefined) res.setHeader(name, value);
    }
    return res;
  } as ServerResponse['writeHead'];
  res.flushHeaders = () => undefined;

  res.write = function write(chunk: unknown, encoding?: unknown, callback?: unknown) {
    if (!streaming && JSON_TYPE.test(headerText(res.getHeader('content-type')) ?? '')) {
      held.push(toBuffer(chunk, encoding));
      const done = typeof encoding === 'function' ? encoding : callback;
      if (typeof done === 'function') process.nextTick(done as WriteCallback);
      return true;
    }
    // Not JSON: let it stream, and check status and type at the end.
    streaming = true;
    Object.assign(res, {
      writeHead: original.writeHead,
      flushHeaders: original.flushHeaders,
      write: original.write,
    });
    return original.write.apply(res, [chunk, encoding, callback] as Parameters<typeof original.write>);
  } as ServerResponse['write'];

  res.end = function end(chunk?: unknown, encoding?: unknown, callback?: unknown) {
    restore();
    if (typeof chunk === 'function') [chunk, callback] = [undefined, chunk];
    else if (typeof encoding === 'function') [encoding, callback] = [undefined, encoding];
    if (streaming) {
      verdict(sent(undefined));
      return original.end.apply(res, [chunk, encoding, callback] as Parameters<typeof original.end>);
    }
    if (chunk !== undefined && chunk !== null) held.push(toBuffer(chunk, encoding));
    const body = Buffer.concat(held);
    const violation = verdict(sent(body));
    if (violation === undefined || res.headersSent) {
      return original.end.apply(res, [body, callback] as Parameters<typeof original.end>);
    }
    for (const name of ['content-length', 'content-encoding', 'etag']) res.removeHeader(name);
    writeProblem(res, 500, `The response does not match the OpenAPI document: ${violation}`, {
      requestId: headerText(res.getHeader('x-request-id')),
    });
    if (typeof callback === 'function') res.once('finish', callback as () => void);
    return res;
  } as ServerResponse['end'];
}

/** `handler` with every answer held to `check` (see interceptResponse). */
export function checkResponses(handler: RequestListener, check: ResponseCheck): RequestListener {
  return (req, res) => {
    interceptResponse(req, res, check);
    handler(req, res);
  };
}

function headerText(value: number | string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function toBuffer(chunk: unknown, encoding: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk), typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
}
