import { createHash } from 'node:crypto';
import { setImmediate as turn } from 'node:timers/promises';
import { isPgError } from '@gpu-telemetry/db';
import {
  AppError,
  type GpuFields,
  NotFoundError,
  type SampleValue,
  toSampleValue,
  ValidationError,
} from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { Pool, PoolClient } from 'pg';
import type { StreamerDatabase } from '../streamer.database';
import { decodeBlock } from '../codec/block-codec';
import { RollupReader } from '../codec/rollup';
import { isoOfMicros } from './sample-time';
import {
  bucketMakings,
  compactedSamplesPerSeries,
  gpuExists,
  listGpus,
  type SampleKey,
  samplesPage,
  type Segment,
  type SeriesRow,
  seriesOfGpu,
  seriesOfMetric,
  type StoredSample,
  rollupHorizons,
  type RollupHorizons,
  setStatementTimeout,
  HUGE,
} from './telemetry-read.queries';

/**
 * A series' last_seen is refreshed once it is a day old, when the series cache (which starts over
 * every 6 hours) resolves it again, and a sample may be up to a day ahead of the clock: one not
 * seen for three days before a range has no sample in it.
 */
const SEEN_SLACK_MS = 3 * 86_400_000;

/** The last_seen a series needs to have a sample at or after `startUs` (see SEEN_SLACK_MS). */
function seenSince(startUs: number): Date {
  return new Date(Math.floor(startUs / 1000) - SEEN_SLACK_MS);
}

/** What one aggregate may cost: samples decoded in the streamer, and time in Postgres. */
export interface AggregateLimits {
  /** Stored samples and rollup buckets one aggregate may decode (PROMQL_MAX_SAMPLES). */
  maxSamples: number;
  /** Longest its reads may run (QUERY_TIMEOUT). */
  timeoutMs: number;
}

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

export interface SampleView extends GpuFields {
  uuid: string;
  timestamp: string;
  metricName: string;
  value: SampleValue;
  labels: Record<string, string>;
}

export interface Bucket {
  start: string;
  count: number;
  avg: number | null;
  min: number | null;
  max: number | null;
}

/** An aggregate past QUERY_TIMEOUT: in Postgres (its statement cancelled) or decoding what it read. */
function pastTimeout(timeoutMs: number): AppError {
  return new AppError(
    503,
    `The aggregate ran past ${timeoutMs} ms (QUERY_TIMEOUT); use a longer step or a shorter range.`,
    { headers: { 'Retry-After': '5' } },
  );
}

/**
 * Keyset cursor: the (time in µs, series id) of the last sample of a page, and what the pages are
 * of (cursorScope: the GPU and metric), opaque to clients.
 */
export function encodeCursor(key: SampleKey, scope: string): string {
  return Buffer.from(JSON.stringify([key.us, key.seriesId, scope])).toString('base64url');
}

/** What a cursor's pages are of: a short digest of the GPU and the metric asked (or none). */
export function cursorScope(gpuId: string, metric: string | undefined): string {
  return createHash('sha256')
    .update(JSON.stringify([gpuId, metric ?? null]))
    .digest('base64url')
    .slice(0, 12);
}

/** Series ids are Postgres integers (4 bytes): a cursor naming one past them was not ours. */
const MAX_SERIES_ID = 2_147_483_647;

/**
 * The position a cursor names, when it is one of ours and of `scope`'s pages: a cursor of another
 * GPU or metric would skip, silently, every sample before its position.
 */
export function decodeCursor(cursor: string, scope: string): SampleKey {
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    // refused below
  }
  const [us, seriesId, of] = Array.isArray(decoded) ? (decoded as unknown[]) : [];
  if (
    Number.isSafeInteger(us) &&
    Number.isSafeInteger(seriesId) &&
    (seriesId as number) > 0 &&
    (seriesId as number) <= MAX_SERIES_ID &&
    typeof of === 'string'
  ) {
    if (of !== scope)
      throw new ValidationError([
        {
          field: 'cursor',
          message: 'is a cursor of another GPU or metric: ask its pages with the same ones',
        },
      ]);
    return { us: us as number, seriesId: seriesId as number };
  }
  throw new ValidationError([{ field: 'cursor', message: 'must be a cursor returned by a previous page' }]);
}

/**
 * The most characters of samples one page of /telemetry holds: each sample repeats its series'
 * labels (up to 64 of 4,096 characters), so a page of 1,000 could pass what one JSON answer may
 * be. A page cut short by it says so with its nextCursor, as a full one does.
 */
export const MAX_PAGE_CHARS = 16 * 1024 * 1024;

/** The id a sample is shown with, as telemetry_sample_uuid() computes it in SQL. */
export function sampleUuid(seriesKey: string, us: number): string {
  const hex = createHash('md5').update(`${seriesKey}:${us}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** A bucket's aggregates so far: its sum in two parts, as Postgres sums hot rows (see HUGE). */
interface BucketSums {
  count: number;
  sum: number;
  /** The sum of values at least HUGE in magnitude, each times 1/HUGE. */
  huge: number;
  min: number;
  max: number;
}

function add(
  buckets: Map<number, BucketSums>,
  key: number,
  count: number,
  sum: number,
  huge: number,
  min: number,
  max: number,
) {
  const bucket = buckets.get(key);
  if (!bucket) buckets.set(key, { count, sum, huge, min, max });
  else {
    bucket.count += count;
    bucket.sum += sum;
    bucket.huge += huge;
    if (min < bucket.min) bucket.min = min;
    if (max > bucket.max) bucket.max = max;
  }
}

/** One finite value into its bucket, summed as Postgres sums hot rows. */
function addValue(buckets: Map<number, BucketSums>, key: number, value: number) {
  if (Math.abs(value) < HUGE) add(buckets, key, 1, value, 0, value, value);
  else add(buckets, key, 1, 0, value / HUGE, value, value);
}

/**
 * The mean of a bucket: finite whenever the mean of its values is, though their sum may not be.
 * A rollup's stored sum can already be infinite (it is a plain sum): then the mean is only known
 * where every value was the same.
 */
function mean(b: BucketSums): number | null {
  const avg = b.sum / b.count + (b.huge / b.count) * HUGE;
  if (Number.isFinite(avg)) return Math.min(b.max, Math.max(b.min, avg));
  return b.min === b.max ? b.min : null;
}

/** The start (µs) of the `stepUs` bucket, aligned to the epoch, that holds `us`: exact for safe integers. */
export function bucketOf(us: number, stepUs: number): number {
  return us - (((us % stepUs) + stepUs) % stepUs);
}

const EVERY_ROLLUP: RollupHorizons = { 60: -Infinity, 3600: -Infinity };

/**
 * [start, end) cut into stretches answered exactly at the coarsest resolution that fits the step:
 * 1-hour rollups where the step is whole hours, 1-minute ones where it is whole minutes, raw samples
 * otherwise, and finer ones at edges that do not fall on the coarse grid or before a resolution's
 * horizon (a day boundary, so on every grid). Bounds in ms, or in any unit `perSecond` of a second
 * (the REST aggregates cut µs bounds); horizons are in ms.
 */
export function segments(
  start: number,
  end: number,
  stepSeconds: number,
  horizons: RollupHorizons = EVERY_ROLLUP,
  perSecond = 1000,
): Segment[] {
  const resolution = stepSeconds % 3600 === 0 ? 3600 : stepSeconds % 60 === 0 ? 60 : 0;
  const scale = perSecond / 1000;
  return split(start, end, resolution, { 60: horizons[60] * scale, 3600: horizons[3600] * scale }, perSecond);
}

function split(
  start: number,
  end: number,
  resolution: 0 | 60 | 3600,
  horizons: RollupHorizons,
  perSecond: number,
): Segment[] {
  if (start >= end) return [];
  if (resolution === 0) return [{ from: start, to: end, resolution }];
  const finer = resolution === 3600 ? 60 : 0;
  const horizon = horizons[resolution];
  if (start < horizon) {
    const cut = Math.min(end, horizon);
    return [
      ...split(start, cut, finer, horizons, perSecond),
      ...split(cut, end, resolution, horizons, perSecond),
    ];
  }
  const size = resolution * perSecond;
  const a = Math.ceil(start / size) * size;
  const b = Math.floor(end / size) * size;
  if (a >= b) return split(start, end, finer, horizons, perSecond);
  return [
    ...split(start, a, finer, horizons, perSecond),
    { from: a, to: b, resolution },
    ...split(b, end, finer, horizons, perSecond),
  ];
}

/** The read side: GPUs, samples of a GPU in time order, and aggregates for charts. */
export class TelemetryQueryService {
  constructor(
    private readonly db: Kysely<StreamerDatabase>,
    /** The same database's pool: aggregates read what they decode by binary COPY on one of its connections. */
    private readonly pool: Pool,
    private readonly limits: AggregateLimits,
  ) {}

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
    /** Microseconds since the epoch: [startUs, endUs). */
    startUs: number;
    endUs: number;
    limit: number;
    cursor?: string;
  }): Promise<{ gpuId: string; samples: SampleView[]; nextCursor: string | null }> {
    await this.requireGpu(args.gpuId);
    const scope = cursorScope(args.gpuId, args.metric);
    const after = args.cursor ? decodeCursor(args.cursor, scope) : undefined;
    const series = await seriesOfGpu(this.db, args.gpuId, args.metric, seenSince(args.startUs));
    if (series.length === 0) return { gpuId: args.gpuId, samples: [], nextCursor: null };
    const byId = new Map(series.map((s) => [s.id, s]));
    const want = args.limit + 1;
    const { hot, blocks } = await samplesPage(this.db, {
      seriesIds: series.map((s) => s.id),
      startUs: args.startUs,
      endUs: args.endUs,
      after,
      limit: want,
    });
    // Hot rows and decoded blocks, one (time, series) order. What was read holds the first `want`
    // samples after the cursor (see samplesPage); the blocks also hold some outside the page.
    const { startUs, endUs } = args;
    const rows: StoredSample[] = [...hot];
    for (const block of blocks) {
      const { times, values } = decodeBlock(block.data);
      for (let i = 0; i < times.length; i++) {
        const us = times[i] as number;
        if (us < startUs || us >= endUs) continue;
        if (after && (us < after.us || (us === after.us && block.seriesId <= after.seriesId))) continue;
        rows.push({ seriesId: block.seriesId, us, value: values[i] as number });
      }
    }
    if (blocks.length > 0) rows.sort((a, b) => a.us - b.us || a.seriesId - b.seriesId);
    // At most `limit` samples, and at most MAX_PAGE_CHARS of them (one at least).
    const samples: SampleView[] = [];
    const charsOf = new Map<number, number>();
    let chars = 0;
    for (const row of rows) {
      if (samples.length === args.limit) break;
      const sample = view(byId.get(row.seriesId) as SeriesRow, row.us, row.value);
      let size = charsOf.get(row.seriesId);
      if (size === undefined) charsOf.set(row.seriesId, (size = JSON.stringify(sample).length + 1));
      if (samples.length > 0 && chars + size > MAX_PAGE_CHARS) break;
      chars += size;
      samples.push(sample);
    }
    const last = rows[samples.length - 1];
    return {
      gpuId: args.gpuId,
      samples,
      nextCursor: rows.length > samples.length && last ? encodeCursor(last, scope) : null,
    };
  }

  /** avg/min/max/count per `stepSeconds` bucket, for charts. NaN and infinities are left out of the aggregates. */
  async series(args: {
    gpuId: string;
    metric: string;
    /** Microseconds since the epoch: [startUs, endUs). */
    startUs: number;
    endUs: number;
    stepSeconds: number;
  }): Promise<{
    gpuId: string;
    metric: string;
    stepSeconds: number;
    buckets: Bucket[];
  }> {
    const deadline = Date.now() + this.limits.timeoutMs;
    await this.requireGpu(args.gpuId);
    const series = await seriesOfGpu(this.db, args.gpuId, args.metric, seenSince(args.startUs));
    return {
      gpuId: args.gpuId,
      metric: args.metric,
      stepSeconds: args.stepSeconds,
      buckets: await this.aggregate(
        series.map((s) => s.id),
        args,
        deadline,
      ),
    };
  }

  /** The same aggregates over every GPU reporting the metric (optionally on one host, of one model). */
  async fleetSeries(args: {
    metric: string;
    /** Microseconds since the epoch: [startUs, endUs). */
    startUs: number;
    endUs: number;
    stepSeconds: number;
    hostname?: string;
    model?: string;
  }): Promise<{ metric: string; stepSeconds: number; series: number; buckets: Bucket[] }> {
    const deadline = Date.now() + this.limits.timeoutMs;
    const ids = await seriesOfMetric(this.db, args.metric, {
      hostname: args.hostname,
      model: args.model,
      seenSince: seenSince(args.startUs),
    });
    return {
      metric: args.metric,
      stepSeconds: args.stepSeconds,
      series: ids.length,
      buckets: await this.aggregate(ids, args, deadline),
    };
  }

  /** `fn` on a connection of the pool, in a read-only transaction that Postgres cancels past `timeoutMs`. */
  private async readOnly<T>(timeoutMs: number, fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query(
        `BEGIN READ ONLY; SET LOCAL statement_timeout = ${Math.max(1, Math.ceil(timeoutMs))}`,
      );
      const result = await fn(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (error) {
      // A failed COPY leaves the transaction aborted; the connection is not reused as it is.
      client.release(error instanceof Error ? error : true);
      throw error;
    }
  }

  /**
   * What an aggregate is made of, read by `deadline` (QUERY_TIMEOUT from the call's start; Postgres
   * cancels a statement past it) in one read-only transaction, once another has found its cost
   * within PROMQL_MAX_SAMPLES: the stored samples of the raw segments' compacted chunks
   * and a bucket per step of each rollup segment, for every series. Over it, a 400 names the step.
   */
  private readMakings(
    seriesIds: number[],
    args: { startUs: number; endUs: number; stepSeconds: number },
    deadline: number,
  ): Promise<Awaited<ReturnType<typeof bucketMakings>> & { parts: Segment[] }> {
    const { maxSamples, timeoutMs } = this.limits;
    const left = () => deadline - Date.now();
    // The cost checked in one read-only transaction, the read in another, each statement cancelled
    // by Postgres past the deadline (57014): an aggregate over a long range cannot hold a
    // connection for good.
    return this.db
      .transaction()
      .setAccessMode('read only')
      .execute(async (trx) => {
        await setStatementTimeout(trx, left());
        const horizons = await rollupHorizons(trx);
        const parts = segments(args.startUs, args.endUs, args.stepSeconds, horizons, 1_000_000);
        let perSeries = await compactedSamplesPerSeries(trx, parts);
        for (const g of parts)
          if (g.resolution > 0) perSeries += (g.to - g.from) / (g.resolution * 1_000_000);
        const cost = Math.ceil(perSeries * seriesIds.length);
        if (cost > maxSamples) {
          throw new ValidationError([
            {
              field: 'step',
              message: `would decode about ${cost.toLocaleString('en')} stored samples for ${seriesIds.length.toLocaleString('en')} series, more than the ${maxSamples.toLocaleString('en')} an aggregate may (PROMQL_MAX_SAMPLES): use a step of whole hours (read from 1-hour rollups), a shorter range, or fewer GPUs (hostname, model)`,
            },
          ]);
        }
        return parts;
      })
      .then(async (parts) => {
        // What is left of QUERY_TIMEOUT, not all of it again.
        const makings = await this.readOnly(left(), (client) =>
          bucketMakings(client, {
            seriesIds,
            startUs: args.startUs,
            endUs: args.endUs,
            stepSeconds: args.stepSeconds,
            segments: parts,
          }),
        );
        return { ...makings, parts };
      })
      .catch((error: unknown) => {
        if (!isPgError(error, '57014')) throw error; // query_canceled: the statement timeout
        throw pastTimeout(timeoutMs);
      });
  }

  /**
   * Buckets of the finite values of these series: hot rows aggregated by Postgres, compacted chunks
   * from their blocks or rollups, each stretch of the range at the coarsest resolution that answers
   * the step exactly (see segments()).
   */
  private async aggregate(
    seriesIds: number[],
    args: { startUs: number; endUs: number; stepSeconds: number },
    deadline: number,
  ): Promise<Bucket[]> {
    const buckets = new Map<number, BucketSums>();
    // Decoding is the streamer's own work, millions of values for a long fleet chart: it lets the
    // event loop turn (ingest, probes, other calls) every 20 ms, and stops at the deadline too.
    let turnedAt = performance.now();
    const breathe = async () => {
      if (performance.now() - turnedAt < 20) return;
      await turn();
      turnedAt = performance.now();
      if (Date.now() > deadline) throw pastTimeout(this.limits.timeoutMs);
    };
    if (seriesIds.length > 0) {
      const stepUs = args.stepSeconds * 1_000_000;
      const { hot, blocks, rollups, parts } = await this.readMakings(seriesIds, args, deadline);
      // Buckets keyed by their start in ms: every step is whole seconds.
      for (const row of hot) {
        add(
          buckets,
          row.start.getTime(),
          row.count,
          row.sum ?? 0,
          row.huge ?? 0,
          row.min as number,
          row.max as number,
        );
      }
      const raw = parts.filter((g) => g.resolution === 0);
      for (const block of blocks) {
        await breathe();
        const { times, values } = decodeBlock(block.data);
        for (let i = 0; i < times.length; i++) {
          const us = times[i] as number;
          const value = values[i] as number;
          if (!Number.isFinite(value) || !raw.some((g) => us >= g.from && us < g.to)) continue;
          addValue(buckets, bucketOf(us, stepUs) / 1000, value);
        }
      }
      const reader = new RollupReader();
      for (const rollup of rollups) {
        await breathe();
        const within = parts.filter((g) => g.resolution === rollup.resolution);
        const n = reader.read(rollup.data);
        const { times, count, sum, min, max } = reader;
        for (let i = 0; i < n; i++) {
          const us = times[i] as number;
          if (count[i] === 0 || !within.some((g) => us >= g.from && us < g.to)) continue;
          add(
            buckets,
            bucketOf(us, stepUs) / 1000,
            count[i] as number,
            sum[i] as number,
            0,
            min[i] as number,
            max[i] as number,
          );
        }
      }
    }
    return [...buckets.entries()]
      .sort(([a], [b]) => a - b)
      .map(([start, b]) => ({
        start: new Date(start).toISOString(),
        count: b.count,
        avg: mean(b),
        min: b.min,
        max: b.max,
      }));
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
