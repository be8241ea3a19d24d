import { type Kysely, sql } from 'kysely';
import type { StreamerDatabase } from '../streamer.database';

type Db = Kysely<StreamerDatabase>;

export interface GpuRow {
  gpuId: string;
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  firstSeen: Date;
  lastSeen: Date;
  metrics: string[];
}

/** GPUs in id order after `after`, optionally on one host. */
export async function listGpus(
  db: Db,
  options: { limit: number; after?: string; hostname?: string },
): Promise<GpuRow[]> {
  let query = db.selectFrom('gpus').selectAll().orderBy('gpu_id').limit(options.limit);
  if (options.after !== undefined) query = query.where('gpu_id', '>', options.after);
  if (options.hostname !== undefined) query = query.where('hostname', '=', options.hostname);
  const rows = await query.execute();
  return rows.map((row) => ({
    gpuId: row.gpu_id,
    gpuIndex: row.gpu_index,
    device: row.device,
    modelName: row.model_name,
    hostname: row.hostname,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    metrics: row.metrics,
  }));
}

export async function gpuExists(db: Db, gpuId: string): Promise<boolean> {
  const row = await db.selectFrom('gpus').select('gpu_id').where('gpu_id', '=', gpuId).executeTakeFirst();
  return row !== undefined;
}

export interface SeriesRow {
  id: number;
  key: string;
  metricName: string;
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  container: string | null;
  pod: string | null;
  namespace: string | null;
  labels: Record<string, string>;
}

/** The series of one GPU, optionally of one metric. */
export async function seriesOfGpu(db: Db, gpuId: string, metric?: string): Promise<SeriesRow[]> {
  let query = db
    .selectFrom('telemetry_series')
    .select([
      'id',
      'key',
      'metric_name',
      'gpu_index',
      'device',
      'model_name',
      'hostname',
      'container',
      'pod',
      'namespace',
      'labels',
    ])
    .where('gpu_id', '=', gpuId)
    .orderBy('id');
  if (metric !== undefined) query = query.where('metric_name', '=', metric);
  const rows = await query.execute();
  return rows.map((row) => ({
    id: Number(row.id),
    key: row.key,
    metricName: row.metric_name,
    gpuIndex: row.gpu_index,
    device: row.device,
    modelName: row.model_name,
    hostname: row.hostname,
    container: row.container,
    pod: row.pod,
    namespace: row.namespace,
    labels: row.labels,
  }));
}

/** A sample as read back: its series, its time in microseconds since the epoch, its value. */
export interface StoredSample {
  seriesId: number;
  us: number;
  value: number;
}

/** A position in (time, series) order: samples after it come next. */
export interface SampleKey {
  us: number;
  seriesId: number;
}

/** Microseconds since the epoch as a timestamptz, exactly (to_timestamp goes through a double). */
const atMicros = (us: number) =>
  sql<Date>`(TIMESTAMPTZ 'epoch' + ${String(us)}::bigint * INTERVAL '1 microsecond')`;

/**
 * Samples of these series in [start, end) after `after`, in (time, series) order, at most `limit`.
 */
export async function samplesPage(
  db: Db,
  args: { seriesIds: number[]; start: Date; end: Date; after?: SampleKey; limit: number },
): Promise<StoredSample[]> {
  const after = args.after
    ? sql`AND (ts, series_id) > (${atMicros(args.after.us)}, ${args.after.seriesId})`
    : sql``;
  const { rows } = await sql<{ series_id: string; us: string; value: number }>`
    SELECT series_id, (extract(epoch FROM ts) * 1000000)::bigint AS us, value
    FROM telemetry_samples
    WHERE series_id = ANY(${args.seriesIds}::bigint[]) AND ts >= ${args.start} AND ts < ${args.end} ${after}
    ORDER BY ts, series_id
    LIMIT ${args.limit}
  `.execute(db);
  return rows.map((r) => ({ seriesId: Number(r.series_id), us: Number(r.us), value: r.value }));
}

export interface BucketRow {
  start: Date;
  count: number;
  sum: number | null;
  min: number | null;
  max: number | null;
}

/** count/sum/min/max of the finite values of these series per `stepSeconds` bucket (aligned to the epoch). */
export async function sampleBuckets(
  db: Db,
  args: { seriesIds: number[]; start: Date; end: Date; stepSeconds: number },
): Promise<BucketRow[]> {
  const { rows } = await sql<{
    bucket: Date;
    count: string;
    sum: number | null;
    min: number | null;
    max: number | null;
  }>`
    SELECT date_bin(make_interval(secs => ${args.stepSeconds}), ts, TIMESTAMPTZ 'epoch') AS bucket,
           count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
    FROM telemetry_samples
    WHERE series_id = ANY(${args.seriesIds}::bigint[]) AND ts >= ${args.start} AND ts < ${args.end}
      AND value > '-Infinity' AND value < 'Infinity'
    GROUP BY 1
    ORDER BY 1
  `.execute(db);
  return rows.map((r) => ({ start: r.bucket, count: Number(r.count), sum: r.sum, min: r.min, max: r.max }));
}
