import {
  type Operation,
  openApiDocument,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
} from '@gpu-telemetry/service-kit';
import { targetsOperations } from './targets.openapi';

/** Prometheus remote write 1.0 in. */
export const writeOperations: Operation[] = [
  {
    method: 'post',
    path: '/v1/write',
    summary:
      'Prometheus remote write 1.0: a snappy-compressed protobuf WriteRequest (Content-Type ' +
      'application/x-protobuf, Content-Encoding snappy, X-Prometheus-Remote-Write-Version 0.1.0); ' +
      'labels kept exactly as sent, stale markers kept; exemplars, native histograms and metadata ' +
      'are not stored. 2xx: stored; 4xx: never worth sending again; 503: retry.',
    tags: ['remote write'],
    responses: { 204: { description: 'Stored: the queue holds every sample (durable)' } },
    problems: {
      400: 'The body is not a snappy block, not a WriteRequest, or holds what cannot be stored (a series without __name__, a bad metric or label name, a label twice, over 64 labels, a NUL, a time before 1970 or over a day ahead); the detail names the series and label',
      413: 'The body is larger than REMOTE_WRITE_MAX_BODY, declares more than REMOTE_WRITE_MAX_DECOMPRESSED uncompressed, or holds more than REMOTE_WRITE_MAX_SERIES series or REMOTE_WRITE_MAX_SAMPLES samples',
      408: 'The body did not arrive whole within REMOTE_WRITE_BODY_TIMEOUT',
      415: 'Not remote write 1.0: another Content-Type, Content-Encoding, protobuf message or protocol version',
      503: 'The queue cannot take the samples now, or REMOTE_WRITE_CONCURRENCY writes are being decoded (or four times as many bodies read); retry after Retry-After',
    },
  },
];

/** Served as GET /openapi.json; tests hold every answer to it. */
export const collectorApi = openApiDocument(
  { title: 'gpu-telemetry collector', version: '0.1.0' },
  [...targetsOperations, ...writeOperations],
  { problems: SERVICE_CREDENTIAL_PROBLEMS, ...SERVICE_CREDENTIAL_SECURITY },
);

// The body is protobuf, which the operations' zod schemas do not describe.
const write = collectorApi.paths['/v1/write']?.['post'] as Record<string, unknown>;
write['requestBody'] = {
  required: true,
  content: {
    'application/x-protobuf': {
      schema: { type: 'string', contentEncoding: 'binary' },
    },
  },
};
