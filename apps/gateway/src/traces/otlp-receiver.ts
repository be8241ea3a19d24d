import type { IncomingMessage, ServerResponse } from 'node:http';
import { createGunzip } from 'node:zlib';
import { AppError } from '@gpu-telemetry/model';
import { type Logger, stampAnswer, writeProblem } from '@gpu-telemetry/service-kit';
import type { Counter } from 'prom-client';
import { decodeJson, decodeProtobuf, SpanFieldError } from './otlp-decoder';
import type { Principal } from '../auth/api-keys.service';
import type { TracesService } from './traces.service';

class ReceiveError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly options: {
      /** Seconds, for a 429 or 503. */
      retryAfter?: string;
      /** What the problem names: the body unless said otherwise. */
      field?: string;
      problem?: string;
    } = {},
  ) {
    super(message);
  }
}

/**
 * The most bytes of an export, gunzipped (GATEWAY_BODY_LIMIT where lower), and the most exports
 * read at once: an export is held whole while it is decoded, several times its size, so together
 * they bound what span exports can take of the gateway's memory. An SDK's batch of 512 spans is
 * well under 1 MiB.
 */
export const OTLP_MAX_BODY = 8 * 1024 * 1024;
export const OTLP_CONCURRENCY = 4;

/**
 * Reads the body (gunzipped if sent so), refusing more than `limit` bytes of it (after gunzip:
 * a small bomb is cut off too). On refusal the reading stops and nothing more is kept; the
 * connection is left for the 413 to be written on (closed after it), not reset under the client.
 */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip')
    return Promise.reject(
      new ReceiveError(415, `Content-Encoding ${encoding} is not supported; use gzip or none.`, {
        field: 'content-encoding',
        problem: 'must be gzip or identity',
      }),
    );
  const gunzip = encoding === 'gzip' ? createGunzip() : undefined;
  const source = gunzip ? req.pipe(gunzip) : req;
  return new Promise<Buffer>((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    const stop = () => {
      source.off('data', onData).off('end', onEnd).off('error', onError);
      req.off('close', onClose).off('error', onError);
      if (gunzip) {
        req.unpipe(gunzip);
        gunzip.destroy();
      }
      req.pause();
      chunks = [];
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      stop();
      reject(new ReceiveError(413, `The body is larger than the ${limit}-byte limit.`));
    };
    const onEnd = () => {
      const body = Buffer.concat(chunks);
      stop();
      resolve(body);
    };
    const onError = (error: Error) => {
      stop();
      reject(new ReceiveError(400, `The body could not be read: ${error.message}`));
    };
    const onClose = () => {
      if (!req.complete) onError(new Error('the client closed the connection before sending it all'));
    };
    source.on('data', onData).once('end', onEnd).once('error', onError);
    if (gunzip) req.once('error', onError);
    req.once('close', onClose);
  });
}

/**
 * OTLP/HTTP trace receiver (`POST /v1/traces`), protobuf or JSON, optionally gzipped: the other
 * services export their spans here, so one request can be followed across all four.
 */
export function createOtlpReceiver(deps: {
  traces: TracesService;
  /** Checks the sender's key (scope `traces`); absent when auth is off. */
  authorize?: (req: IncomingMessage) => Promise<Principal>;
  /**
   * Takes a token from the sender's rate-limit budget (the key's, or its address's without
   * auth); returns the seconds to wait when it has none left.
   */
  throttle: (
    req: IncomingMessage,
    res: ServerResponse,
    principal: Principal | undefined,
  ) => number | undefined;
  logger: Logger;
  /** The most bytes of a body, gunzipped. */
  limit: number;
  /** The most exports read and stored at once; past it, 503 with Retry-After (exporters retry). */
  concurrency: number;
  received: Counter<'outcome'>;
  spans: Counter;
  truncated: Counter;
}) {
  let inFlight = 0;
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = stampAnswer(req, res);
    let counted = false;
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      ?.trim()
      .toLowerCase();
    try {
      let principal: Principal | undefined;
      if (deps.authorize) {
        try {
          principal = await deps.authorize(req);
        } catch (error) {
          if (error instanceof AppError) {
            deps.received.inc({ outcome: 'unauthorized' });
            req.resume();
            writeProblem(res, error.status, error.message, { headers: error.options.headers, requestId });
            return;
          }
          throw error;
        }
      }
      // After the key: without one, nothing about the receiver is told, not even its method.
      if (req.method !== 'POST') throw new ReceiveError(405, 'Send spans with POST.');
      const wait = deps.throttle(req, res, principal);
      if (wait !== undefined)
        throw new ReceiveError(429, 'Rate limit exceeded; slow down.', { retryAfter: String(wait) });
      if (type !== 'application/x-protobuf' && type !== 'application/json') {
        throw new ReceiveError(415, 'Send OTLP as application/x-protobuf or application/json.', {
          field: 'content-type',
          problem: 'must be application/x-protobuf or application/json',
        });
      }
      if (Number(req.headers['content-length'] ?? 0) > deps.limit)
        throw new ReceiveError(413, `The body is larger than the ${deps.limit}-byte limit.`);
      if (inFlight >= deps.concurrency)
        throw new ReceiveError(503, 'Too many span exports in flight; retry shortly.', { retryAfter: '1' });
      inFlight++;
      counted = true;
      const body = await readBody(req, deps.limit);
      let decoded;
      try {
        decoded = type === 'application/json' ? decodeJson(body) : decodeProtobuf(body);
      } catch (error) {
        const message = `Not a valid OTLP ExportTraceServiceRequest: ${(error as Error).message}`;
        throw error instanceof SpanFieldError
          ? new ReceiveError(400, message, { field: error.field, problem: error.problem })
          : new ReceiveError(400, message);
      }
      const cut = decoded.filter((span) => span.truncated).length;
      if (cut > 0) {
        deps.truncated.inc(cut);
        deps.logger.warn({ spans: cut, of: decoded.length }, 'spans cut to what a span keeps');
      }
      const stored = await deps.traces.store(decoded);
      deps.received.inc({ outcome: 'stored' });
      deps.spans.inc(stored);
      // An empty ExportTraceServiceResponse: full success.
      if (type === 'application/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    } catch (thrown) {
      // A value Postgres refuses (SQLSTATE class 22) is the export's fault: retrying cannot help.
      const error = /^22/.test(String((thrown as { code?: unknown }).code))
        ? new ReceiveError(400, `A span holds a value that cannot be stored: ${(thrown as Error).message}`)
        : thrown;
      const status = error instanceof ReceiveError ? error.status : 503;
      const refused = error instanceof ReceiveError;
      deps.received.inc({
        outcome: refused ? (status === 429 || status === 503 ? 'throttled' : 'rejected') : 'failed',
      });
      if (!refused) deps.logger.warn({ error: (error as Error).message }, 'could not store spans');
      const detail = refused ? error.message : 'Spans could not be stored; retry shortly.';
      const headers: Record<string, string> = {};
      if (status === 429 || status === 503)
        headers['retry-after'] = refused ? (error.options.retryAfter ?? '1') : '5';
      if (status === 405) headers['allow'] = 'POST';
      // The rest of a body refused unread is not waited for: the connection closes after the answer.
      if (!req.complete) headers['connection'] = 'close';
      writeProblem(res, status, detail, {
        ...(status === 429 || status === 503
          ? {}
          : {
              errors: [
                refused && error.options.field
                  ? { field: error.options.field, message: error.options.problem ?? detail }
                  : { field: 'body', message: detail },
              ],
            }),
        headers,
        requestId,
      });
    } finally {
      if (counted) inFlight--;
    }
  };
}
