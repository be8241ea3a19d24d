import { labelsOfGpuColumns, type LeasedMessage, type MetricMetadata } from '@gpu-telemetry/model';
import { inTransaction, isPgError, onConnection } from '@gpu-telemetry/db';
import type { HandleResult } from '@gpu-telemetry/queue-client';
import { getTracer, linkTo, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import { type Link, SpanKind } from '@opentelemetry/api';
import type { Pool, PoolClient } from 'pg';
import type { StreamerMetrics } from './streamer.metrics';
import { type ChunkCompactor, ChunkMovedError, type LateSample } from './chunk-compactor';
import { GpuMetricsWritten } from './gpu-metrics-written';
import { hotGroup, planHotTimes, samplesOf } from './hot-times';
import { pgTimestamp } from './sample-time';
import { decodeIdSet, encodeIdSet } from './id-set';
import { SeriesCache } from './series-cache';
import {
  Accepted,
  BatchReader,
  isScraped,
  type LabelledSeries,
  type ScrapedSeries,
  sightings,
} from './batch-reader';
import {
  type Chunk,
  ensureChunks,
  type GpuSighting,
  type HotRows,
  claimHotTimes,
  copyHotSamples,
  type HotTimes,
  hotTimeKey,
  lockHotTimes,
  writeHotTimes,
  insertStaleMarkers,
  flushLabelIndex,
  resolveSeries,
  type SeriesLabels,
  type StaleMarker,
  upsertGpus,
  upsertMetadata,
} from './telemetry-write.queries';

export interface IngestDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  /** Samples older than this are refused (they would be dropped by retention anyway); 0: no limit. */
  retentionMs: number;
  /** How long the maintainer keeps a GPU unseen before deleting its row (gpuRetention); 0: never. */
  gpuRetentionMs?: number;
  /** Length of a slice of a chunk (TELEMETRY_SLICE, see sliceLength): hot samples are partitioned by it. */
  sliceMs: number;
  /** Merges samples that arrive for chunks already compacted. */
  compactor: ChunkCompactor;
  now?: () => number;
}

const tracer = getTracer('streamer');
/**
 * Turns leased telemetry messages into rows. Every sample is checked (BatchReader); the valid ones
 * are stored in one transaction whether or not their message had bad ones, and a message with
 * invalid content goes straight to the dead letters with a reason naming the first problem, so it
 * never holds up the batch. Each sample finds its series (metric and labels, stored once) and
 * becomes a narrow row of series id, time and value in its chunk; a stale marker becomes a row of
 * telemetry_stale instead. Storage is idempotent on (series, time): a redelivered message stores
 * nothing twice.
 */
export class IngestService {
  /** Chunks known to exist, by slice number (time / sliceMs): a merged chunk under each of its slices'. */
  private readonly knownChunks = new Map<number, Chunk>();
  /** Each host seen to its hotGroup (bounded: cleared past 100,000 hosts). */
  private readonly hostGroups = new Map<string, number>();
  /** Each metric name met, to its number (metricNumber): the order hot rows are copied in. */
  private readonly metricNumbers = new Map<string, number>();
  private readonly series: SeriesCache;
  private readonly gpuMetrics: GpuMetricsWritten;
  /** Whether this role may not flush the label index, and when a failed flush was last logged. */
  private readonly labelIndex = { unflushable: false, warnedAt: -Infinity };

  private readonly reader: BatchReader;

  constructor(private readonly deps: IngestDeps) {
    this.series = new SeriesCache(undefined, undefined, deps.now);
    this.reader = new BatchReader(deps.retentionMs, this.series);
    this.gpuMetrics = new GpuMetricsWritten(deps.gpuRetentionMs, undefined, deps.now);
  }

  /**
   * Validates and stores a leased batch; what cannot be stored is reported by message. The batch's
   * statements run on one connection: when `signal` aborts (the batch ran past
   * STREAMER_MAX_HANDLE, waiting on a lock or a stalled server), the statement running is cancelled,
   * the batch fails, and the connection is closed rather than pooled again.
   */
  async handle(messages: LeasedMessage<unknown>[], signal?: AbortSignal): Promise<HandleResult> {
    const { metrics, logger } = this.deps;
    const started = performance.now();
    // The batch's span links to each message's publish (the trace it was published in).
    const links = messages.map((m) => linkTo(m.traceparent)).filter((l): l is Link => l !== undefined);
    return withSpan(
      tracer,
      'streamer.batch',
      { 'messaging.batch.message_count': messages.length },
      async (span) => {
        const now = (this.deps.now ?? Date.now)();
        const accepted = new Accepted();
        const described = new Map<string, MetricMetadata>();
        const failed: NonNullable<HandleResult['failed']> = [];
        const oldest: number[] = [];
        let invalid = 0;
        for (const message of messages) {
          const before = accepted.length;
          const { problems, samples: refused } = this.reader.read(message.payload, now, accepted, described);
          if (accepted.length > before) {
            let first = Infinity;
            for (let i = before; i < accepted.length; i++) first = Math.min(first, accepted.at[i] as number);
            oldest.push(first);
          }
          invalid += refused;
          if (problems.length > 0) {
            const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
            failed.push({
              id: message.id,
              reason: `invalid telemetry: ${problems[0]}${more}`,
              deadLetter: true,
            });
          }
        }
        try {
          const { inserted, values, stale } = await this.onOneConnection(signal, async (db) => {
            const stored = await this.insert(accepted, db, signal);
            await this.storeSightings(sightings(accepted), db);
            metrics.metadataUpdated.inc(await upsertMetadata(db, [...described.values()]));
            return stored;
          });
          const lag = messages.length
            ? (now - Math.min(...messages.map((m) => Date.parse(m.publishedAt)))) / 1000
            : 0;
          metrics.inserted.inc(inserted);
          metrics.duplicates.inc(values - inserted);
          metrics.staleMarkers.inc(stale);
          metrics.invalid.inc(invalid);
          metrics.deadLettered.inc(failed.length);
          metrics.batches.inc({ outcome: 'stored' });
          metrics.lag.set(lag);
          const stored = Date.now();
          for (const at of oldest) metrics.sampleAge.observe(Math.max(0, (stored - at) / 1000));
          span.setAttributes({
            'streamer.inserted': inserted,
            'streamer.duplicates': values - inserted,
            'streamer.stale_markers': stale,
            'streamer.invalid': invalid,
          });
          logger.info(
            {
              messages: messages.length,
              samples: values,
              inserted,
              duplicates: values - inserted,
              staleMarkers: stale,
              invalid,
              deadLettered: failed.length,
              lagSeconds: Math.round(lag * 1000) / 1000,
            },
            'stored batch',
          );
          return { failed };
        } catch (error) {
          metrics.batches.inc({ outcome: 'failed' });
          throw error;
        } finally {
          metrics.batchDuration.observe((performance.now() - started) / 1000);
        }
      },
      SpanKind.CONSUMER,
      links,
    );
  }

  /**
   * Runs `run` on one pooled connection, whose statement is cancelled should `signal` abort. A
   * connection that failed, or was cancelled, is closed rather than pooled again: a cancel may
   * reach its backend after the statement it was meant for.
   */
  private onOneConnection<T>(
    signal: AbortSignal | undefined,
    run: (db: PoolClient) => Promise<T>,
  ): Promise<T> {
    return onConnection(
      this.deps.pool,
      async (db, broken) => {
        try {
          return await run(db);
        } catch (error) {
          broken();
          throw error;
        }
      },
      signal,
      (sent) => this.deps.logger.warn({ sent }, 'batch past its limit: cancelling the statement it waits on'),
    );
  }

  /** The series id of every sample, resolving (and storing) the ones this process has not seen. */
  private async seriesIds(samples: Accepted, db: PoolClient): Promise<number[]> {
    const ids: number[] = new Array(samples.length);
    const missing = new Map<string, number[]>();
    this.series.expireIfOld();
    const current = this.series.generation;
    for (let i = 0; i < samples.length; i++) {
      const of = samples.of[i] as ScrapedSeries | LabelledSeries;
      if (isScraped(of) && of.generation === current) {
        ids[i] = of.id as number;
        continue;
      }
      const id = this.series.get(of.key);
      if (id !== undefined) {
        ids[i] = id;
        if (isScraped(of)) Object.assign(of, { id, generation: current });
      } else {
        const waiting = missing.get(of.key);
        if (waiting) waiting.push(i);
        else missing.set(of.key, [i]);
      }
    }
    if (missing.size > 0) {
      const keys = [...missing.keys()];
      const labels: SeriesLabels[] = keys.map((key) =>
        seriesLabels(
          samples.of[(missing.get(key) as number[])[0] as number] as ScrapedSeries | LabelledSeries,
        ),
      );
      const generation = this.series.generation;
      const { ids: resolved, created } = await resolveSeries(db, labels);
      if (created > 0) {
        this.deps.metrics.seriesCreated.inc(created);
        await this.flushLabelIndex(db);
      }
      const kept = generation === this.series.generation; // not started over meanwhile
      keys.forEach((key, k) => {
        const id = resolved[k] as number;
        this.series.set(key, id, generation);
        for (const i of missing.get(key) as number[]) {
          ids[i] = id;
          const of = samples.of[i] as ScrapedSeries | LabelledSeries;
          if (kept && isScraped(of)) Object.assign(of, { id, generation });
        }
      });
      this.deps.metrics.seriesResolved.inc(keys.length);
    }
    return ids;
  }

  /** The chunk holding every time (created with its partition where missing). */
  private async chunksOf(times: number[], db: PoolClient): Promise<Chunk[]> {
    const { sliceMs } = this.deps;
    const found: Chunk[] = new Array(times.length);
    const missing: number[] = [];
    const holds = (chunk: Chunk | undefined, at: number): chunk is Chunk =>
      chunk !== undefined && at >= chunk.start && at < chunk.end;
    let last: Chunk | undefined; // a batch's times are mostly a few scrape times: looked up once each
    const place = (i: number): boolean => {
      const at = times[i] as number;
      const chunk = holds(last, at) ? last : this.knownChunks.get(Math.floor(at / sliceMs));
      if (!holds(chunk, at)) return false;
      found[i] = last = chunk;
      return true;
    };
    for (let i = 0; i < times.length; i++) if (!place(i)) missing.push(i);
    for (let round = 0; missing.length > 0; round++) {
      if (round === 3) throw new Error('could not find or make the chunks of a batch');
      // One time per slice number; a slice cut short by a neighbour takes another round.
      const byNumber = new Map<number, number>();
      for (const i of missing) {
        const at = times[i] as number;
        if (!byNumber.has(Math.floor(at / sliceMs))) byNumber.set(Math.floor(at / sliceMs), at);
      }
      for (const chunk of await ensureChunks(db, [...byNumber.values()], sliceMs)) {
        const last = Math.floor((chunk.end - 1) / sliceMs);
        for (let n = Math.floor(chunk.start / sliceMs); n <= last; n++) this.knownChunks.set(n, chunk);
      }
      const left = missing.filter((i) => !place(i));
      missing.length = 0;
      missing.push(...left);
    }
    return found;
  }

  /**
   * Stores the samples: those of open (hot) chunks by COPY, those of chunks already compacted by
   * merging them into their blocks, stale markers in telemetry_stale. A chunk compacted since this
   * process last looked refuses the COPY (check_violation), and the batch is routed again. Returns
   * the values stored (of `values` offered) and the stale markers newly stored.
   */
  private async insert(
    all: Accepted,
    db: PoolClient,
    signal?: AbortSignal,
  ): Promise<{ inserted: number; values: number; stale: number }> {
    if (all.length === 0) return { inserted: 0, values: 0, stale: 0 };
    const ids = await this.seriesIds(all, db);
    const markers: StaleMarker[] = all.stale.map((i) => ({
      seriesId: ids[i] as number,
      timestamp: pgTimestamp(all.us[i] as number),
    }));
    const stale = await insertStaleMarkers(db, markers);
    // Indexes of the samples not stored yet: hot ones go in one COPY, late ones chunk by chunk;
    // a metric's samples together (inMetricOrder).
    let pending = this.inMetricOrder(all, withoutIndexes(all.length, all.stale));
    const values = pending.length;
    if (values === 0) return { inserted: 0, values: 0, stale };
    let inserted = 0;
    for (let attempt = 1; ; attempt++) {
      const chunks = await this.chunksOf(
        pending.map((i) => Math.floor((all.us[i] as number) / 1000)),
        db,
      );
      const hot: HotRows = { seriesIds: [], us: [], values: [] };
      const groups: number[] = [];
      const late = new Map<number, { indexes: number[]; samples: LateSample[] }>();
      pending.forEach((i, k) => {
        const chunk = chunks[k] as Chunk;
        const seriesId = ids[i] as number;
        const us = all.us[i] as number;
        const value = all.value[i] as number;
        if (!chunk.compacted) {
          hot.seriesIds.push(seriesId);
          hot.us.push(us);
          hot.values.push(value);
          groups.push(this.hotGroupOf(all.of[i] as ScrapedSeries | LabelledSeries, seriesId));
          return;
        }
        let list = late.get(chunk.start);
        if (!list) late.set(chunk.start, (list = { indexes: [], samples: [] }));
        list.indexes.push(i);
        list.samples.push({ seriesId, us, value });
      });
      try {
        if (hot.seriesIds.length > 0) {
          const stored = await this.storeHot(hot, groups, db);
          this.deps.metrics.insertPaths.inc({ path: stored.path });
          inserted += stored.inserted;
        }
      } catch (error) {
        // check_violation: a chunk was compacted (or dropped by retention) since we looked.
        if (!isPgError(error, '23514') || attempt === 3) throw error;
        this.forgetChunks();
        continue;
      }
      pending = [];
      for (const [chunkStart, list] of late) {
        try {
          inserted += await this.deps.compactor.mergeLate(chunkStart, list.samples, signal);
        } catch (error) {
          // The chunk's slices were merged meanwhile: nothing of this list was written.
          if (!(error instanceof ChunkMovedError) || attempt === 3) throw error;
          pending.push(...list.indexes);
        }
      }
      if (pending.length === 0) return { inserted, values, stale };
      this.forgetChunks();
    }
  }

  /**
   * `indexes` with each metric's samples together, in their order within it. A batch's hot rows
   * fill the partition's pages in the order they are copied: host by host, as scrapes come, every
   * page held a few samples of every metric, so a selector of one metric across a fleet (a PromQL
   * panel, the fleet aggregates) read every page of the hot partition. Metric by metric, a
   * metric's samples of a batch share a page or two (docs/performance.md has the figures).
   */
  private inMetricOrder(all: Accepted, indexes: number[]): number[] {
    // A counting sort by metric number: stable, and linear in the batch.
    const n = indexes.length;
    const metricOf = new Int32Array(n);
    let metrics = 0;
    for (let k = 0; k < n; k++) {
      const of = all.of[indexes[k] as number] as ScrapedSeries | LabelledSeries;
      const number = this.metricNumber(isScraped(of) ? of.metricName : of.metric);
      metricOf[k] = number;
      if (number >= metrics) metrics = number + 1;
    }
    // Where each metric's samples begin in the output: counted, then summed.
    const at = new Int32Array(metrics + 1);
    for (const m of metricOf) at[m + 1] = (at[m + 1] as number) + 1;
    for (let m = 1; m <= metrics; m++) at[m] = (at[m] as number) + (at[m - 1] as number);
    const out = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      const m = metricOf[k] as number;
      const place = at[m] as number;
      at[m] = place + 1;
      out[place] = indexes[k] as number;
    }
    return out;
  }

  /** A number for each metric name, in the order first met (bounded: cleared past 100,000 names). */
  private metricNumber(metric: string): number {
    let number = this.metricNumbers.get(metric);
    if (number === undefined) {
      if (this.metricNumbers.size >= 100_000) this.metricNumbers.clear();
      this.metricNumbers.set(metric, (number = this.metricNumbers.size));
    }
    return number;
  }

  /**
   * The group of a series' hot sample times (hotGroup): its host, the hostname it was stored with,
   * else its instance label, as telemetry_hot_group reads them from telemetry_series.
   */
  private hotGroupOf(of: ScrapedSeries | LabelledSeries, seriesId: number): number {
    const host = (isScraped(of) ? of.hostname : of.gpu?.hostname) || of.labels['instance'] || null;
    if (!host) return hotGroup(null, seriesId);
    let group = this.hostGroups.get(host);
    if (group === undefined) {
      if (this.hostGroups.size >= 100_000) this.hostGroups.clear();
      this.hostGroups.set(host, (group = hotGroup(host, seriesId)));
    }
    return group;
  }

  /**
   * Stores hot samples, each (series, time) once, in one transaction: the batch's (sample time,
   * host group) rows are claimed in telemetry_hot_times first, and only samples whose series the
   * row did not hold yet go in by COPY. Nearly every batch brings rows nobody holds ('copy'); a
   * redelivery, or another message with samples of the same time and host, finds its row held,
   * reads its series under lock and adds what is new ('dedup'). Returns how many
   * samples were stored and which path they took.
   */
  private async storeHot(
    rows: HotRows,
    groups: readonly number[],
    db: PoolClient,
  ): Promise<{ inserted: number; path: 'copy' | 'dedup' }> {
    const plan = planHotTimes(rows, groups);
    const { claims } = plan;
    return inTransaction(db, async (tx) => {
      const claimed = await claimHotTimes(tx, claims);
      // Nearly every batch: every row new, no sample twice. Its samples go as they came.
      if (claimed.size === claims.us.length && plan.repeated === 0)
        return { inserted: await copyHotSamples(tx, rows), path: 'copy' };
      const keep: number[] = [];
      const held: number[] = [];
      claims.us.forEach((us, k) => {
        if (!claimed.has(hotTimeKey(us, claims.groups[k] as number))) held.push(k);
        else for (const [, index] of samplesOf(plan, k)) keep.push(index);
      });
      if (held.length > 0) {
        const stored = await lockHotTimes(tx, {
          us: held.map((k) => claims.us[k] as number),
          groups: held.map((k) => claims.groups[k] as number),
        });
        const changed: HotTimes = { us: [], groups: [], sets: [] };
        for (const k of held) {
          const us = claims.us[k] as number;
          const group = claims.groups[k] as number;
          const series = new Set(decodeIdSet(stored.get(hotTimeKey(us, group)) ?? EMPTY));
          const before = series.size;
          for (const [seriesId, index] of samplesOf(plan, k)) {
            if (series.has(seriesId)) continue;
            series.add(seriesId);
            keep.push(index);
          }
          if (series.size === before) continue;
          changed.us.push(us);
          changed.groups.push(group);
          changed.sets.push(encodeIdSet([...series].sort((a, b) => a - b)));
        }
        await writeHotTimes(tx, changed);
      }
      if (keep.length === 0) return { inserted: 0, path: 'dedup' };
      const order = Float64Array.from(keep).sort();
      const fresh: HotRows = { seriesIds: [], us: [], values: [] };
      for (const i of order) {
        fresh.seriesIds.push(rows.seriesIds[i] as number);
        fresh.us.push(rows.us[i] as number);
        fresh.values.push(rows.values[i] as number);
      }
      return { inserted: await copyHotSamples(tx, fresh), path: held.length > 0 ? 'dedup' : 'copy' };
    });
  }

  /**
   * Keeps `gpus` current. A GPU whose metric names are all stored is sent without them; if its row
   * turns out to be gone (retention deleted it meanwhile), it is sent again with them.
   */
  private async storeSightings(seen: GpuSighting[], db: PoolClient): Promise<void> {
    const unlisted = await upsertGpus(db, this.gpuMetrics.narrow(seen));
    if (unlisted.length > 0) {
      this.gpuMetrics.forget(unlisted);
      const again = new Set(unlisted);
      await upsertGpus(
        db,
        seen.filter((s) => again.has(s.gpuId)),
      );
    }
    this.gpuMetrics.stored(seen);
  }

  /**
   * Moves new series into the label index in bulk (flushLabelIndex). The series are stored
   * whatever happens: a role that may not flush (not the index's owner) stops trying, with one
   * warning; another failure is counted and logged at most once a minute, and tried again with the
   * next new series.
   */
  private async flushLabelIndex(db: PoolClient): Promise<void> {
    if (this.labelIndex.unflushable) return;
    const { metrics, logger } = this.deps;
    try {
      await flushLabelIndex(db);
      metrics.labelIndexFlushes.inc({ outcome: 'flushed' });
    } catch (error) {
      // Cancelled (the batch stopped at its limit): the batch fails with it.
      if (isPgError(error, '57014')) throw error;
      if (isPgError(error, '42501')) {
        this.labelIndex.unflushable = true;
        metrics.labelIndexFlushes.inc({ outcome: 'not_owner' });
        logger.warn(
          { err: error },
          'this role does not own telemetry_series_labels_idx: new series reach the label index ' +
            'when its pending list passes 256 kB or autovacuum runs (run the streamer as the role that migrated)',
        );
        return;
      }
      metrics.labelIndexFlushes.inc({ outcome: 'failed' });
      const now = Date.now();
      if (now - this.labelIndex.warnedAt >= 60_000) {
        this.labelIndex.warnedAt = now;
        logger.warn(
          { err: error },
          'could not move new series into the label index; the next ones will try again',
        );
      }
    }
  }

  /** Forget known chunks (after retention dropped some, or compaction closed some). */
  forgetChunks(): void {
    this.knownChunks.clear();
  }
}

/** How a sample's series is stored: from a scrape's GPU fields, or from a label set as sent. */
function seriesLabels(of: ScrapedSeries | LabelledSeries): SeriesLabels {
  if (isScraped(of)) {
    return {
      metricName: of.metricName,
      gpuId: of.gpuId,
      gpuIndex: of.gpuIndex,
      device: of.device,
      modelName: of.modelName,
      hostname: of.hostname,
      container: of.container,
      pod: of.pod,
      namespace: of.namespace,
      labels: of.labels,
      promLabels: labelsOfGpuColumns(of),
      byLabelSet: false,
    };
  }
  const gpu = of.gpu;
  return {
    metricName: of.metric,
    gpuId: gpu?.gpuId ?? null,
    gpuIndex: gpu?.gpuIndex ?? null,
    device: gpu?.device ?? null,
    modelName: gpu?.modelName ?? null,
    hostname: gpu?.hostname ?? null,
    container: gpu?.container ?? null,
    pod: gpu?.pod ?? null,
    namespace: gpu?.namespace ?? null,
    labels: gpu ? gpu.labels : of.labels,
    promLabels: of.labels,
    byLabelSet: true,
  };
}

/** 0 .. length-1 without `skip` (ascending). */
function withoutIndexes(length: number, skip: readonly number[]): number[] {
  const kept: number[] = [];
  let k = 0;
  for (let i = 0; i < length; i++) {
    if (i === skip[k]) k++;
    else kept.push(i);
  }
  return kept;
}

const EMPTY = Buffer.alloc(0);
