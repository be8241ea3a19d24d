import { fieldErrors } from '@gpu-telemetry/service-kit';
import {
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
const DAY_MS = 24 * 3_600_000;
const FUTURE_MS = DAY_MS;

/** The samples of a batch that passed, with each one's time parsed once (times[i] is valid[i]'s). */
interface Accepted {
  valid: TelemetrySample[];
  times: number[];
}

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
          await this.ensureDays(accepted.times);
          const inserted = await this.insert(valid, accepted.times);
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

  private async ensureDays(times: number[]): Promise<void> {
    const days = new Set<number>();
    for (const at of times) days.add(Math.floor(at / DAY_MS));
    // Each day on its own: a stray old sample must not create every day in between.
    for (const d of [...days].sort((a, b) => a - b)) {
      const iso = new Date(d * DAY_MS).toISOString().slice(0, 10);
      if (this.knownDays.has(iso)) continue;
      const created = await ensurePartitions(this.deps.pool, iso, iso);
      if (created > 0) this.deps.metrics.partitionsCreated.inc(created);
      this.knownDays.add(iso);
    }
  }

  private async insert(samples: TelemetrySample[], times: number[]): Promise<number> {
    let stored;
    try {
      stored = await insertSamples(this.deps.pool, samples);
    } catch (error) {
      // A partition this process thought existed was dropped (retention elsewhere): recreate, retry once.
      if (!isPgError(error, '23514')) throw error; // check_violation: no partition for the row
      this.knownDays.clear();
      await this.ensureDays(times);
      stored = await insertSamples(this.deps.pool, samples);
    }
    if (samples.length > 0) this.deps.metrics.insertPaths.inc({ path: stored.path });
    return stored.inserted;
  }

  /** Forget known partitions (after retention dropped some). */
  forgetPartitions(): void {
    this.knownDays.clear();
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
