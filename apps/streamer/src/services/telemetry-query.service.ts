import { createHash } from 'node:crypto';
import { NotFoundError, type SampleValue, toSampleValue, ValidationError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { StreamerDatabase } from '../streamer.database';
import {
  gpuExists,
  listGpus,
  type SampleKey,
  sampleBuckets,
  samplesPage,
  type SeriesRow,
  seriesOfGpu,
} from './telemetry-read.queries';

export interface GpuView {
  id: string;
  index: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  firstSeen: string;
  lastSeen: string;
  metrics: string[];
}

export interface SampleView {
  uuid: string;
  timestamp: string;
  metricName: string;
  value: SampleValue;
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  container: string | null;
  pod: string | null;
  namespace: string | null;
  labels: Record<string, string>;
}

export interface Bucket {
  start: string;
  count: number;
  avg: number | null;
  min: number | null;
  max: number | null;
}

/** Keyset cursor: the (time in µs, series id) of the last sample of a page, opaque to clients. */
export function encodeCursor(key: SampleKey): string {
  return Buffer.from(JSON.stringify([key.us, key.seriesId])).toString('base64url');
}

export function decodeCursor(cursor: string): SampleKey {
  try {
    const [us, seriesId] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [
      unknown,
      unknown,
    ];
    if (Number.isSafeInteger(us) && Number.isSafeInteger(seriesId) && (seriesId as number) > 0) {
      return { us: us as number, seriesId: seriesId as number };
    }
  } catch {
    // fall through
  }
  throw new ValidationError([{ field: 'cursor', message: 'must be a cursor returned by a previous page' }]);
}

/** The id a sample is shown with, as telemetry_sample_uuid() computes it in SQL. */
export function sampleUuid(seriesKey: string, us: number): string {
  const hex = createHash('md5').update(`${seriesKey}:${us}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const isoOfMicros = (us: number) => new Date(Math.floor(us / 1000)).toISOString();

/** The read side: GPUs, samples of a GPU in time order, and aggregates for charts. */
export class TelemetryQueryService {
  constructor(private readonly db: Kysely<StreamerDatabase>) {}

  async gpus(options: {
    limit: number;
    cursor?: string;
    hostname?: string;
  }): Promise<{ gpus: GpuView[]; nextCursor: string | null }> {
    const rows = await listGpus(this.db, {
      limit: options.limit + 1,
      after: options.cursor ? Buffer.from(options.cursor, 'base64url').toString('utf8') : undefined,
      hostname: options.hostname,
    });
    const page = rows.slice(0, options.limit);
    return {
      gpus: page.map((row) => ({
        id: row.gpuId,
        index: row.gpuIndex,
        device: row.device,
        modelName: row.modelName,
        hostname: row.hostname,
        firstSeen: row.firstSeen.toISOString(),
        lastSeen: row.lastSeen.toISOString(),
        metrics: row.metrics,
      })),
      nextCursor:
        rows.length > options.limit ? Buffer.from(page.at(-1)?.gpuId ?? '').toString('base64url') : null,
    };
  }

  private async requireGpu(gpuId: string): Promise<void> {
    if (!(await gpuExists(this.db, gpuId)))
      throw new NotFoundError(`GPU ${gpuId} has never reported telemetry.`);
  }

  /** Samples of one GPU in time order, start inclusive, end exclusive, one keyset page at a time. */
  async telemetry(args: {
    gpuId: string;
    metric?: string;
    start: Date;
    end: Date;
    limit: number;
    cursor?: string;
  }): Promise<{ gpuId: string; samples: SampleView[]; nextCursor: string | null }> {
    await this.requireGpu(args.gpuId);
    const after = args.cursor ? decodeCursor(args.cursor) : undefined;
    const series = await seriesOfGpu(this.db, args.gpuId, args.metric);
    if (series.length === 0) return { gpuId: args.gpuId, samples: [], nextCursor: null };
    const byId = new Map(series.map((s) => [s.id, s]));
    const rows = await samplesPage(this.db, {
      seriesIds: series.map((s) => s.id),
      start: args.start,
      end: args.end,
      after,
      limit: args.limit + 1,
    });
    const page = rows.slice(0, args.limit);
    const last = page.at(-1);
    return {
      gpuId: args.gpuId,
      samples: page.map((row) => view(byId.get(row.seriesId) as SeriesRow, row.us, row.value)),
      nextCursor: rows.length > args.limit && last ? encodeCursor(last) : null,
    };
  }

  /** avg/min/max/count per `stepSeconds` bucket, for charts. NaN and infinities are left out of the aggregates. */
  async series(args: {
    gpuId: string;
    metric: string;
    start: Date;
    end: Date;
    stepSeconds: number;
  }): Promise<{
    gpuId: string;
    metric: string;
    stepSeconds: number;
    buckets: Bucket[];
  }> {
    await this.requireGpu(args.gpuId);
    const series = await seriesOfGpu(this.db, args.gpuId, args.metric);
    const rows =
      series.length === 0
        ? []
        : await sampleBuckets(this.db, {
            seriesIds: series.map((s) => s.id),
            start: args.start,
            end: args.end,
            stepSeconds: args.stepSeconds,
          });
    return {
      gpuId: args.gpuId,
      metric: args.metric,
      stepSeconds: args.stepSeconds,
      buckets: rows.map((row) => ({
        start: row.start.toISOString(),
        count: row.count,
        avg: row.count > 0 && row.sum !== null ? row.sum / row.count : null,
        min: row.min,
        max: row.max,
      })),
    };
  }
}

function view(series: SeriesRow, us: number, value: number): SampleView {
  return {
    uuid: sampleUuid(series.key, us),
    timestamp: isoOfMicros(us),
    metricName: series.metricName,
    value: toSampleValue(value),
    gpuIndex: series.gpuIndex,
    device: series.device,
    modelName: series.modelName,
    hostname: series.hostname,
    container: series.container,
    pod: series.pod,
    namespace: series.namespace,
    labels: series.labels,
  };
}
