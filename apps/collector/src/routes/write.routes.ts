import { apiRouter } from '@gpu-telemetry/service-kit';
import type { IncomingMessage } from 'node:http';
import { AppError, PayloadTooLargeError } from '@gpu-telemetry/model';
import type { Router } from 'express';
import type { RemoteWriteService } from '../remote-write/remote-write.service';

/**
 * The body's bytes, up to `limit`: a larger Content-Length is refused before a byte is read, a
 * stream that passes the limit as soon as it does (the rest is discarded, never held), a body not
 * whole within `deadlineMs` with a 408.
 */
export function readLimitedBody(req: IncomingMessage, limit: number, deadlineMs = Infinity): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    return Promise.reject(new PayloadTooLargeError(`The body is larger than the ${limit}-byte limit.`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    // A body that trickles in holds its memory and its place: it has `deadlineMs` to arrive.
    const timer = Number.isFinite(deadlineMs)
      ? setTimeout(() => {
          chunks.length = 0;
          done(
            new AppError(408, `The body did not arrive within ${deadlineMs / 1000} s.`, {
              headers: { connection: 'close' },
            }),
          );
        }, deadlineMs)
      : undefined;
    const done = (error?: Error) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks, length));
    };
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) {
        chunks.length = 0;
        done(new PayloadTooLargeError(`The body is larger than the ${limit}-byte limit.`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done();
    const onError = (error: Error) =>
      done(new AppError(400, `The body could not be read: ${error.message}.`));
    const onAborted = () =>
      done(new AppError(400, 'The client closed the connection before sending the whole body.'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

/**
 * POST /v1/write: Prometheus remote write 1.0 in (snappy-compressed protobuf, read as bytes here,
 * so it is mounted before the service's JSON handling). 204 once the queue has every sample.
 */
export function writeRoutes(remoteWrite: RemoteWriteService): Router {
  const router = apiRouter();
  router.post('/v1/write', async (req, res) => {
    await remoteWrite.receive(req.headers, (limit, deadlineMs) => readLimitedBody(req, limit, deadlineMs));
    res.status(204).end();
  });
  return router;
}
