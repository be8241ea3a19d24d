import type { IncomingMessage, ServerResponse } from 'node:http';
import { createGunzip } from 'node:zlib';
import { AppError } from '@gpu-telemetry/model';
import { type Logger, writeProblem } from '@gpu-telemetry/service-kit';
import type { Counter } from 'prom-client';
import { decodeJson, decodeProtobuf } from './otlp-decoder';
import type { TracesService } from './traces.service';

class ReceiveError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Reads the body (gunzipped if sent so), refusing more than `limit` bytes of it. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const encoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
  if (encoding !== 'identity' && encoding !== 'gzip')
    throw new ReceiveError(415, `Content-Encoding ${encoding} is not supported; use gzip or none.`);
  const source = encoding === 'gzip' ? req.pipe(createGunzip()) : req;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new ReceiveError(413, `The body is larger than the ${limit}-byte limit.`);
      chunks.push(chunk);
    }
  } catch (error) {
    if (error instanceof ReceiveError) throw error;
    throw new ReceiveError(400, `The body could not be read: ${(error as Error).message}`);
  }
  return Buffer.concat(chunks);
}

/**
 * OTLP/HTTP trace receiver (`POST /v1/traces`), protobuf or JSON, optionally gzipped: the other
 * services export their spans here, so one request can be followed across all four.
 */
export function createOtlpReceiver(deps: {
  traces: TracesService;
  /** Checks the sender's key (scope `traces`); absent when auth is off. */
  authorize?: (req: IncomingMessage) => Promise<unknown>;
  logger: Logger;
  limit: number;
  received: Counter<'outcome'>;
  spans: Counter;
}) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]
      ?.trim()
      .toLowerCase();
    try {
      if (req.method !== 'POST') throw new ReceiveError(405, 'Send spans with POST.');
      if (deps.authorize) {
        try {
          await deps.authorize(req);
        } catch (error) {
          if (error instanceof AppError) {
            deps.received.inc({ outcome: 'unauthorized' });
            req.resume();
            writeProblem(res, error.status, error.message, { headers: error.options.headers });
            return;
          }
          throw error;
        }
      }
      if (type !== 'application/x-protobuf' && type !== 'application/json') {
        throw new ReceiveError(415, 'Send OTLP as application/x-protobuf or application/json.');
      }
      const body = await readBody(req, deps.limit);
      let decoded;
      try {
        decoded = type === 'application/json' ? decodeJson(body) : decodeProtobuf(body);
      } catch (error) {
        throw new ReceiveError(
          400,
          `Not a valid OTLP ExportTraceServiceRequest: ${(error as Error).message}`,
        );
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
      deps.received.inc({ outcome: status === 503 ? 'failed' : 'rejected' });
      if (status === 503) deps.logger.warn({ error: (error as Error).message }, 'could not store spans');
      const detail =
        error instanceof ReceiveError ? error.message : 'Spans could not be stored; retry shortly.';
      writeProblem(res, status, detail, {
        errors: [{ field: 'body', message: detail }],
        headers: status === 503 ? { 'retry-after': '5' } : {},
      });
    }
  };
}
