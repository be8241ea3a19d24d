import { sampleValue } from '@gpu-telemetry/model';
import {
  type Operation,
  openApiDocument,
  shapeOf,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
} from '@gpu-telemetry/service-kit';
import { z } from 'zod';
import type { Bucket, GpuView, SampleView } from '../services/telemetry-query.service';
import {
  fleetSeriesQuery,
  gpuParams,
  gpusQuery,
  metricParams,
  seriesParams,
  seriesQuery,
  telemetryQuery,
} from './gpus.routes';
import { prometheusOperations } from './prometheus.openapi';
import { storageQuery } from './storage.routes';
import type { StorageReport } from '../services/storage.service';

const time = z.iso.datetime({ offset: true });
const gpu = shapeOf<GpuView>()(
  z.object({
    id: z.string(),
    index: z.number().int().nullable(),
    device: z.string().nullable(),
    modelName: z.string().nullable(),
    hostname: z.string().nullable(),
    firstSeen: time,
    lastSeen: time,
    metrics: z.array(z.string()),
  }),
);
const sample = shapeOf<SampleView>()(
  z.object({
    uuid: z.string(),
    timestamp: time,
    metricName: z.string(),
    value: sampleValue,
    gpuIndex: z.number().int().nullable(),
    device: z.string().nullable(),
    modelName: z.string().nullable(),
    hostname: z.string().nullable(),
    container: z.string().nullable(),
    pod: z.string().nullable(),
    namespace: z.string().nullable(),
    labels: z.record(z.string(), z.string()),
  }),
);
const bucket = shapeOf<Bucket>()(
  z.object({
    start: time,
    count: z.number().int(),
    avg: z.number().nullable(),
    min: z.number().nullable(),
    max: z.number().nullable(),
  }),
);

const tags = ['telemetry'];
const badInput = 'A path parameter or a query parameter is invalid (the problem names it)';
const noGpu = 'The GPU has never reported telemetry';

/** The query API, from the schemas its routes validate with and answer in. */
export const gpusOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/gpus',
    summary: 'GPUs seen, with model, host, first/last seen and metrics',
    tags,
    query: gpusQuery,
    responses: {
      200: {
        description: 'GPUs',
        schema: z.object({ gpus: z.array(gpu), nextCursor: z.string().nullable() }),
      },
    },
    problems: { 400: badInput },
  },
  {
    method: 'get',
    path: '/v1/gpus/{gpuId}/telemetry',
    summary:
      'Samples of one GPU in time order (start inclusive, end exclusive; default the last hour), keyset-paginated',
    tags,
    params: gpuParams,
    query: telemetryQuery,
    responses: {
      200: {
        description: 'A page of samples',
        schema: z.object({ gpuId: z.string(), samples: z.array(sample), nextCursor: z.string().nullable() }),
      },
    },
    problems: { 400: badInput, 404: noGpu },
  },
  {
    method: 'get',
    path: '/v1/gpus/{gpuId}/metrics/{metric}/series',
    summary: 'avg/min/max/count per step bucket, for charts',
    tags,
    params: seriesParams,
    query: seriesQuery,
    responses: {
      200: {
        description: 'Buckets',
        schema: z.object({
          gpuId: z.string(),
          metric: z.string(),
          stepSeconds: z.number().int(),
          buckets: z.array(bucket),
        }),
      },
    },
    problems: { 400: badInput, 404: noGpu },
  },
  {
    method: 'get',
    path: '/v1/gpus/metrics/{metric}/series',
    summary:
      'avg/min/max/count per step bucket over every GPU reporting the metric (optionally one host or model); long ranges come from rollups',
    tags,
    params: metricParams,
    query: fleetSeriesQuery,
    responses: {
      200: {
        description: 'Buckets',
        schema: z.object({
          metric: z.string(),
          stepSeconds: z.number().int(),
          series: z.number().int(),
          buckets: z.array(bucket),
        }),
      },
    },
    problems: { 400: badInput },
  },
];

const bytes = z.number().int().nonnegative();
const tier = {
  bytes,
  samples: z.number().int().nonnegative(),
  bytesPerSample: z.number().nullable(),
};
const storageReport = shapeOf<StorageReport>()(
  z.object({
    hot: z.object({ ...tier, estimated: z.boolean() }),
    blocks: z.object({ ...tier, blocks: z.number().int().nonnegative() }),
    rollups1m: z.object({ bytes }),
    rollups1h: z.object({ bytes }),
    series: z.object({ count: z.number().int().nonnegative(), bytes }),
    totalBytes: bytes,
  }),
);

/** What the stored telemetry costs. */
export const storageOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/storage',
    summary:
      'Bytes of Postgres per tier (hot rows with the series of each hot sample time, blocks, 1-minute and 1-hour rollups, series), indexes and TOAST included, with samples and bytes per sample; hot rows are estimated (`estimated`) once past 80 MB',
    tags: ['storage'],
    query: storageQuery,
    responses: { 200: { description: 'The storage report', schema: storageReport } },
    problems: { 400: 'A query parameter was given (the problem names it)' },
  },
];

/** Served as GET /openapi.json; tests hold every answer to it. */
export const streamerApi = openApiDocument(
  { title: 'gpu-telemetry streamer', version: '0.1.0' },
  [...gpusOperations, ...storageOperations, ...prometheusOperations],
  { problems: SERVICE_CREDENTIAL_PROBLEMS, ...SERVICE_CREDENTIAL_SECURITY },
);
