import { fieldErrors } from '@gpu-telemetry/service-kit';
import {
  type LeasedMessage,
  type TelemetrySample,
  telemetryBatch,
  telemetrySample,
} from '@gpu-telemetry/model';
import type { HandleResult } from '@gpu-telemetry/queue-client';
import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import type { StreamerMetrics } from './streamer.metrics';
import { ensurePartitions, type GpuSighting, insertSamples, upsertGpus } from './telemetry.queries';

export interface IngestDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  /** Samples older than this are refused (they would be dropped by retention anyway); 0: no limit. */
  retentionMs: number;
  now?: () => number;
}

const tracer = getTracer('streamer');
const FUTURE_MS = 24 * 3_600_000;
const day = (iso: string) => iso.slice(0, 10);

/**
 * Turns leased telemetry messages into rows. Every sample is validated; the valid ones are stored
 * in one transaction whether or not their message had bad ones, and a message with invalid
 * content goes straight to the dead letters with a reason naming the first problem, so it never
 * holds up the batch. Storage is idempotent: a redelivered message stores nothing twice.
 */
export class IngestService {
  private readonly knownDays = new Set<string>();

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
        const valid: TelemetrySample[] = [];
        const failed: NonNullable<HandleResult['failed']> = [];
        let invalid = 0;
        for (const message of messages) {
          const problems = this.validate(message.payload, now, valid);
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
          await this.ensureDays(valid);
          const inserted = await this.insert(valid);
          await upsertGpus(this.deps.pool, sightings(valid));
          const lag = messages.length
            ? (now - Math.min(...messages.map((m) => Date.parse(m.publishedAt)))) / 1000
            : 0;
          metrics.inserted.inc(inserted);
          metrics.duplicates.inc(valid.length - inserted);
          metrics.invalid.inc(invalid);
          metrics.deadLettered.inc(failed.length);
          metrics.batches.inc({ outcome: 'stored' });
          metrics.lag.set(lag);
          for (const message of messages) {
            const oldest = oldestSample(message.payload);
            if (oldest !== undefined) metrics.sampleAge.observe(Math.max(0, (Date.now() - oldest) / 1000));
          }
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

  /** Appends the message's valid samples to `valid`; returns its problems, named by field. */
  private validate(payload: unknown, now: number, valid: TelemetrySample[]): string[] {
    const envelope = telemetryBatch.safeParse(payload);
    if (!envelope.success) {
      return fieldErrors(envelope.error).map(
        (e) => `${e.field === 'body' ? 'payload' : e.field}: ${e.message}`,
      );
    }
    const problems: string[] = [];
    envelope.data.samples.forEach((raw, index) => {
      const parsed = telemetrySample.safeParse(raw);
      if (!parsed.success) {
        for (const e of fieldErrors(parsed.error, ['samples', index]))
          problems.push(`${e.field}: ${e.message}`);
        return;
      }
      const at = Date.parse(parsed.data.timestamp);
      if (at > now + FUTURE_MS)
        return void problems.push(`samples[${index}].timestamp: is more than a day in the future`);
      if (this.deps.retentionMs > 0 && at < now - this.deps.retentionMs) {
        return void problems.push(`samples[${index}].timestamp: is older than TELEMETRY_RETENTION`);
      }
      valid.push(parsed.data);
    });
    return problems;
  }

  private async ensureDays(samples: TelemetrySample[]): Promise<void> {
    const days = [...new Set(samples.map((s) => day(new Date(s.timestamp).toISOString())))]
      .filter((d) => !this.knownDays.has(d))
      .sort();
    // Each day on its own: a stray old sample must not create every day in between.
    for (const d of days) {
      const created = await ensurePartitions(this.deps.pool, d, d);
      if (created > 0) this.deps.metrics.partitionsCreated.inc(created);
      this.knownDays.add(d);
    }
  }

  private async insert(samples: TelemetrySample[]): Promise<number> {
    try {
      return await insertSamples(this.deps.pool, samples);
    } catch (error) {
      // A partition this process thought existed was dropped (retention elsewhere): recreate, retry once.
      if ((error as { code?: string }).code !== '23514') throw error;
      this.knownDays.clear();
      await this.ensureDays(samples);
      return insertSamples(this.deps.pool, samples);
    }
  }

  /** Forget known partitions (after retention dropped some). */
  forgetPartitions(): void {
    this.knownDays.clear();
  }
}

function sightings(samples: TelemetrySample[]): GpuSighting[] {
  const byGpu = new Map<string, GpuSighting & { metricSet: Set<string> }>();
  for (const s of samples) {
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
        metricSet: new Set(),
      };
      byGpu.set(s.gpuId, gpu);
    }
    const at = Date.parse(s.timestamp);
    if (at < Date.parse(gpu.firstSeen)) gpu.firstSeen = s.timestamp;
    if (at > Date.parse(gpu.lastSeen)) gpu.lastSeen = s.timestamp;
    gpu.metricSet.add(s.metricName);
  }
  return [...byGpu.values()].map(({ metricSet, ...gpu }) => ({ ...gpu, metrics: [...metricSet].sort() }));
}

function oldestSample(payload: unknown): number | undefined {
  const samples = (payload as { samples?: { timestamp?: unknown }[] } | null)?.samples;
  if (!Array.isArray(samples)) return undefined;
  let oldest: number | undefined;
  for (const s of samples) {
    const t = typeof s?.timestamp === 'string' ? Date.parse(s.timestamp) : NaN;
    if (!Number.isNaN(t) && (oldest === undefined || t < oldest)) oldest = t;
  }
  return oldest;
}
