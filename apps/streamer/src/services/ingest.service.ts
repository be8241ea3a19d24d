import { fieldErrors } from '@gpu-telemetry/service-kit';
import {
  fromSampleValue,
  isTelemetrySample,
  type LeasedMessage,
  type TelemetrySample,
  telemetryBatch,
  telemetrySample,
} from '@gpu-telemetry/model';
import { isPgError } from '@gpu-telemetry/db';
import type { HandleResult } from '@gpu-telemetry/queue-client';
import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import type { StreamerMetrics } from './streamer.metrics';
import type { ChunkCompactor, LateSample } from './chunk-compactor';
import { microsOf } from './sample-time';
import { SeriesCache } from './series-cache';
import {
  type Chunk,
  ensureChunks,
  type GpuSighting,
  type HotSample,
  insertHotSamples,
  resolveSeries,
  type SeriesLabels,
  upsertGpus,
} from './telemetry-write.queries';

export interface IngestDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  /** Samples older than this are refused (they would be dropped by retention anyway); 0: no limit. */
  retentionMs: number;
  /** Length of a chunk of time (TELEMETRY_CHUNK). */
  chunkMs: number;
  /** Merges samples that arrive for chunks already compacted. */
  compactor: ChunkCompactor;
  now?: () => number;
}

const tracer = getTracer('streamer');
const FUTURE_MS = 24 * 3_600_000;

/** The samples of a batch that passed, with each one's time parsed once (times[i] is valid[i]'s). */
interface Accepted {
  valid: TelemetrySample[];
  times: number[];
}

/**
 * Turns leased telemetry messages into rows. Every sample is validated; the valid ones are stored
 * in one transaction whether or not their message had bad ones, and a message with invalid
 * content goes straight to the dead letters with a reason naming the first problem, so it never
 * holds up the batch. Each sample finds its series (metric and labels, stored once) and becomes a
 * narrow row of series id, time and value in its chunk. Storage is idempotent on (series, time):
 * a redelivered message stores nothing twice.
 */
export class IngestService {
  /** Chunks known to exist, by chunk number (time / chunkMs). */
  private readonly knownChunks = new Map<number, Chunk>();
  private readonly series = new SeriesCache();

  constructor(private readonly deps: IngestDeps) {}

  async handle(messages: LeasedMessage<unknown>[]): Promise<HandleResult> {
    const { metrics, logger } = this.deps;
    const started = performance.now();
    return withSpan(
      tracer,
      'streamer.batch',
      { 'messaging.batch.message_count': messages.length },
      async (span) => {
        const now = (this.deps.now ?? Date.now)();
        const accepted: Accepted = { valid: [], times: [] };
        const { valid } = accepted;
        const failed: NonNullable<HandleResult['failed']> = [];
        const oldest: number[] = [];
        let invalid = 0;
        for (const message of messages) {
          const before = valid.length;
          const problems = this.validate(message.payload, now, accepted);
          if (valid.length > before) oldest.push(Math.min(...accepted.times.slice(before)));
          if (problems.length > 0) {
            invalid += problems.length;
            const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : '';
            failed.push({
              id: message.id,
              reason: `invalid telemetry: ${problems[0]}${more}`,
              deadLetter: true,
            });
          }
        }
        try {
          const inserted = await this.insert(valid);
          await upsertGpus(this.deps.pool, sightings(accepted));
          const lag = messages.length
            ? (now - Math.min(...messages.map((m) => Date.parse(m.publishedAt)))) / 1000
            : 0;
          metrics.inserted.inc(inserted);
          metrics.duplicates.inc(valid.length - inserted);
          metrics.invalid.inc(invalid);
          metrics.deadLettered.inc(failed.length);
          metrics.batches.inc({ outcome: 'stored' });
          metrics.lag.set(lag);
          const stored = Date.now();
          for (const at of oldest) metrics.sampleAge.observe(Math.max(0, (stored - at) / 1000));
          span.setAttributes({
            'streamer.inserted': inserted,
            'streamer.duplicates': valid.length - inserted,
            'streamer.invalid': invalid,
          });
          logger.info(
            {
              messages: messages.length,
              samples: valid.length,
              inserted,
              duplicates: valid.length - inserted,
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
    );
  }

  /** Appends the message's valid samples to `accepted`; returns its problems, named by field. */
  private validate(payload: unknown, now: number, accepted: Accepted): string[] {
    const envelope = telemetryBatch.safeParse(payload);
    if (!envelope.success) {
      return fieldErrors(envelope.error).map(
        (e) => `${e.field === 'body' ? 'payload' : e.field}: ${e.message}`,
      );
    }
    const problems: string[] = [];
    const { samples } = envelope.data;
    for (let index = 0; index < samples.length; index++) {
      const raw = samples[index];
      let sample: TelemetrySample;
      if (isTelemetrySample(raw)) {
        sample = raw;
      } else {
        // Off the fast path: the schema either fixes it up (upper-case uuid) or says what is wrong.
        const parsed = telemetrySample.safeParse(raw);
        if (!parsed.success) {
          for (const e of fieldErrors(parsed.error, ['samples', index]))
            problems.push(`${e.field}: ${e.message}`);
          continue;
        }
        sample = parsed.data;
      }
      const at = Date.parse(sample.timestamp);
      if (at > now + FUTURE_MS) {
        problems.push(`samples[${index}].timestamp: is more than a day in the future`);
      } else if (this.deps.retentionMs > 0 && at < now - this.deps.retentionMs) {
        problems.push(`samples[${index}].timestamp: is older than TELEMETRY_RETENTION`);
      } else {
        accepted.valid.push(sample);
        accepted.times.push(at);
      }
    }
    return problems;
  }

  /** The series id of every sample, resolving (and storing) the ones this process has not seen. */
  private async seriesIds(samples: TelemetrySample[]): Promise<number[]> {
    const ids: number[] = new Array(samples.length);
    const missing = new Map<string, number[]>();
    for (let i = 0; i < samples.length; i++) {
      const key = SeriesCache.keyOf(samples[i] as TelemetrySample);
      const id = this.series.get(key);
      if (id !== undefined) ids[i] = id;
      else {
        const waiting = missing.get(key);
        if (waiting) waiting.push(i);
        else missing.set(key, [i]);
      }
    }
    if (missing.size > 0) {
      const keys = [...missing.keys()];
      const labels: SeriesLabels[] = keys.map((key) => {
        const s = samples[(missing.get(key) as number[])[0] as number] as TelemetrySample;
        return {
          metricName: s.metricName,
          gpuId: s.gpuId,
          gpuIndex: s.gpuIndex,
          device: s.device,
          modelName: s.modelName,
          hostname: s.hostname,
          container: s.container,
          pod: s.pod,
          namespace: s.namespace,
          labels: s.labels,
        };
      });
      const resolved = await resolveSeries(this.deps.pool, labels);
      keys.forEach((key, k) => {
        const id = resolved[k] as number;
        this.series.set(key, id);
        for (const i of missing.get(key) as number[]) ids[i] = id;
      });
      this.deps.metrics.seriesResolved.inc(keys.length);
    }
    return ids;
  }

  /** The chunk holding every time (created with its partition where missing). */
  private async chunksOf(times: number[]): Promise<Chunk[]> {
    const { chunkMs } = this.deps;
    const found: Chunk[] = new Array(times.length);
    const missing: number[] = [];
    const place = (i: number): boolean => {
      const at = times[i] as number;
      const chunk = this.knownChunks.get(Math.floor(at / chunkMs));
      if (!chunk || at < chunk.start || at >= chunk.end) return false;
      found[i] = chunk;
      return true;
    };
    for (let i = 0; i < times.length; i++) if (!place(i)) missing.push(i);
    for (let round = 0; missing.length > 0; round++) {
      if (round === 3) throw new Error('could not find or make the chunks of a batch');
      // One time per chunk number; a chunk cut short by a neighbour takes another round.
      const byNumber = new Map<number, number>();
      for (const i of missing) {
        const at = times[i] as number;
        if (!byNumber.has(Math.floor(at / chunkMs))) byNumber.set(Math.floor(at / chunkMs), at);
      }
      for (const chunk of await ensureChunks(this.deps.pool, [...byNumber.values()], chunkMs)) {
        this.knownChunks.set(Math.floor(chunk.start / chunkMs), chunk);
      }
      const left = missing.filter((i) => !place(i));
      missing.length = 0;
      missing.push(...left);
    }
    return found;
  }

  /**
   * Stores the samples: those of open (hot) chunks by COPY, those of chunks already compacted by
   * merging them into their blocks. A chunk compacted since this process last looked refuses the
   * COPY (check_violation), and the batch is routed again.
   */
  private async insert(samples: TelemetrySample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const ids = await this.seriesIds(samples);
    const micros = samples.map((s) => microsOf(s.timestamp));
    const routeTimes = micros.map((us) => Math.floor(us / 1000));
    for (let attempt = 1; ; attempt++) {
      const chunks = await this.chunksOf(routeTimes);
      const hot: HotSample[] = [];
      const late = new Map<number, LateSample[]>();
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i] as TelemetrySample;
        const chunk = chunks[i] as Chunk;
        const value = fromSampleValue(s.value);
        if (!chunk.compacted) {
          hot.push({ seriesId: ids[i] as number, timestamp: s.timestamp, value });
          continue;
        }
        const list = late.get(chunk.start);
        const sample = { seriesId: ids[i] as number, us: micros[i] as number, value };
        if (list) list.push(sample);
        else late.set(chunk.start, [sample]);
      }
      let inserted = 0;
      try {
        if (hot.length > 0) {
          const stored = await insertHotSamples(this.deps.pool, hot);
          this.deps.metrics.insertPaths.inc({ path: stored.path });
          inserted += stored.inserted;
        }
      } catch (error) {
        // check_violation: a chunk was compacted (or dropped by retention) since we looked.
        if (!isPgError(error, '23514') || attempt === 3) throw error;
        this.forgetChunks();
        continue;
      }
      for (const [chunkStart, list] of late)
        inserted += await this.deps.compactor.mergeLate(chunkStart, list);
      return inserted;
    }
  }

  /** Forget known chunks (after retention dropped some, or compaction closed some). */
  forgetChunks(): void {
    this.knownChunks.clear();
  }
}

function sightings({ valid, times }: Accepted): GpuSighting[] {
  const byGpu = new Map<string, GpuSighting & { first: number; last: number; metricSet: Set<string> }>();
  for (let i = 0; i < valid.length; i++) {
    const s = valid[i] as TelemetrySample;
    const at = times[i] as number;
    let gpu = byGpu.get(s.gpuId);
    if (!gpu) {
      gpu = {
        gpuId: s.gpuId,
        gpuIndex: s.gpuIndex,
        device: s.device,
        modelName: s.modelName,
        hostname: s.hostname,
        firstSeen: s.timestamp,
        lastSeen: s.timestamp,
        metrics: [],
        first: at,
        last: at,
        metricSet: new Set(),
      };
      byGpu.set(s.gpuId, gpu);
    }
    if (at < gpu.first) {
      gpu.first = at;
      gpu.firstSeen = s.timestamp;
    }
    if (at > gpu.last) {
      gpu.last = at;
      gpu.lastSeen = s.timestamp;
    }
    gpu.metricSet.add(s.metricName);
  }
  return [...byGpu.values()].map(({ metricSet, first: _first, last: _last, ...gpu }) => ({
    ...gpu,
    metrics: [...metricSet].sort(),
  }));
}
