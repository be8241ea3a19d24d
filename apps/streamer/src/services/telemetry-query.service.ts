import type { Database } from '@gpu-telemetry/db';
import { NotFoundError, type SampleValue, toSampleValue, ValidationError } from '@gpu-telemetry/model';
import { type Kysely, sql } from 'kysely';

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

/** Keyset cursor: the (timestamp, uuid) of the last row of a page, opaque to clients. */
export function encodeCursor(timestamp: Date, uuid: string): string {
  return Buffer.from(JSON.stringify([timestamp.toISOString(), uuid])).toString('base64url');
}

export function decodeCursor(cursor: string): { timestamp: string; uuid: string } {
  try {
    const [timestamp, uuid] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [
      unknown,
      unknown,
    ];
    if (
      typeof timestamp === 'string' &&
      !Number.isNaN(Date.parse(timestamp)) &&
      typeof uuid === 'string' &&
      /^[0-9a-f-]{36}$/.test(uuid)
    ) {
      return { timestamp, uuid };
    }
  } catch {
    // fall through
  }
  throw new ValidationError([{ field: 'cursor', message: 'must be a cursor returned by a previous page' }]);
}

/** The read side of `telemetry`: every query is an index range scan (see the EXPLAIN tests). */
export class TelemetryQueryService {
  constructor(private readonly db: Kysely<Database>) {}

  async gpus(options: {
    limit: number;
    cursor?: string;
    hostname?: string;
  }): Promise<{ gpus: GpuView[]; nextCursor: string | null }> {
    let query = this.db
      .selectFrom('gpus')
      .selectAll()
      .orderBy('gpu_id')
      .limit(options.limit + 1);
    if (options.cursor)
      query = query.where('gpu_id', '>', Buffer.from(options.cursor, 'base64url').toString('utf8'));
    if (options.hostname) query = query.where('hostname', '=', options.hostname);
    const rows = await query.execute();
    const page = rows.slice(0, options.limit);
    return {
      gpus: page.map((row) => ({
        id: row.gpu_id,
        index: row.gpu_index,
        device: row.device,
        modelName: row.model_name,
        hostname: row.hostname,
        firstSeen: row.first_seen.toISOString(),
        lastSeen: row.last_seen.toISOString(),
        metrics: row.metrics,
      })),
      nextCursor:
        rows.length > options.limit ? Buffer.from(page.at(-1)?.gpu_id ?? '').toString('base64url') : null,
    };
  }

  private async requireGpu(gpuId: string): Promise<void> {
    const gpu = await this.db
      .selectFrom('gpus')
      .select('gpu_id')
      .where('gpu_id', '=', gpuId)
      .executeTakeFirst();
    if (!gpu) throw new NotFoundError(`GPU ${gpuId} has never reported telemetry.`);
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
    let query = this.db
      .selectFrom('telemetry')
      .select([
        'uuid',
        'timestamp',
        'metric_name',
        'value',
        'gpu_index',
        'device',
        'model_name',
        'hostname',
        'container',
        'pod',
        'namespace',
        'labels',
      ])
      .where('gpu_id', '=', args.gpuId)
      .where('timestamp', '>=', args.start)
      .where('timestamp', '<', args.end)
      .orderBy('timestamp')
      .orderBy('uuid')
      .limit(args.limit + 1);
    if (args.metric) query = query.where('metric_name', '=', args.metric);
    if (after)
      query = query.where(
        sql<boolean>`("timestamp", uuid) > (${after.timestamp}::timestamptz, ${after.uuid}::uuid)`,
      );
    const rows = await query.execute();
    const page = rows.slice(0, args.limit);
    const last = page.at(-1);
    return {
      gpuId: args.gpuId,
      samples: page.map((row) => ({
        uuid: row.uuid,
        timestamp: row.timestamp.toISOString(),
        metricName: row.metric_name,
        value: toSampleValue(row.value),
        gpuIndex: row.gpu_index,
        device: row.device,
        modelName: row.model_name,
        hostname: row.hostname,
        container: row.container,
        pod: row.pod,
        namespace: row.namespace,
        labels: row.labels,
      })),
      nextCursor: rows.length > args.limit && last ? encodeCursor(last.timestamp, last.uuid) : null,
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
    const { rows } = await sql<{
      bucket: Date;
      count: string;
      avg: number | null;
      min: number | null;
      max: number | null;
    }>`
      SELECT date_bin(make_interval(secs => ${args.stepSeconds}), "timestamp", TIMESTAMPTZ '1970-01-01 00:00:00+00') AS bucket,
             count(*) AS count, avg(value) AS avg, min(value) AS min, max(value) AS max
      FROM telemetry
      WHERE gpu_id = ${args.gpuId} AND metric_name = ${args.metric}
        AND "timestamp" >= ${args.start} AND "timestamp" < ${args.end}
        AND value > '-Infinity' AND value < 'Infinity'
      GROUP BY 1
      ORDER BY 1
    `.execute(this.db);
    return {
      gpuId: args.gpuId,
      metric: args.metric,
      stepSeconds: args.stepSeconds,
      buckets: rows.map((row) => ({
        start: row.bucket.toISOString(),
        count: Number(row.count),
        avg: row.avg,
        min: row.min,
        max: row.max,
      })),
    };
  }
}
