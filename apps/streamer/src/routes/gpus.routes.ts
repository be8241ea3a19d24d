import { parseDuration } from '@gpu-telemetry/config';
import {
  dateTime,
  GPU_ID,
  GPU_ID_MESSAGE,
  METRIC_NAME,
  storableText,
  ValidationError,
} from '@gpu-telemetry/model';
import { apiRouter, validate, validateQuery } from '@gpu-telemetry/service-kit';
import type { Router } from 'express';
import { z } from 'zod';
import { microsOf } from '../services/sample-time';
import { bucketOf, type TelemetryQueryService } from '../services/telemetry-query.service';

export const gpuParams = z.object({ gpuId: z.string().regex(GPU_ID, GPU_ID_MESSAGE) });
const metricName = z.string().max(256).regex(METRIC_NAME, 'must be a Prometheus metric name');
export const seriesParams = gpuParams.extend({ metric: metricName });
export const metricParams = z.object({ metric: metricName });
const time = dateTime();
/** Text a query can compare with what is stored: bounded, no NUL, no lone surrogate. */
const label = storableText(256);

const range = {
  start_time: time.optional(),
  end_time: time.optional(),
};

export const gpusQuery = z.strictObject({
  limit: z.coerce.number().int('must be a whole number').min(1).max(10_000).default(1_000),
  // The last GPU id of a page, base64url.
  cursor: z
    .string()
    .max(512)
    .refine(
      (cursor) => GPU_ID.test(Buffer.from(cursor, 'base64url').toString('utf8')),
      'must be a nextCursor returned by a previous page',
    )
    .optional(),
  hostname: label.optional(),
});

export const telemetryQuery = z.strictObject({
  ...range,
  metric: z.string().max(256).regex(METRIC_NAME, 'must be a Prometheus metric name').optional(),
  limit: z.coerce.number().int('must be a whole number').min(1).max(10_000).default(1_000),
  cursor: z.string().max(512).optional(),
});

/** Ten years: past it, a bucket's bounds overflow Postgres' intervals (and one bucket holds any range). */
const MAX_STEP_MS = 3650 * 86_400_000;

const step = (defaultStep: string) =>
  z
    .string()
    .default(defaultStep)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined || ms < 1000 || ms > MAX_STEP_MS || ms % 1000 !== 0) {
        ctx.addIssue({
          code: 'custom',
          message: 'must be a whole number of seconds from 1s to 3650d, such as 30s, 5m or 1h',
        });
        return z.NEVER;
      }
      return ms / 1000;
    });

export const seriesQuery = z.strictObject({ ...range, step: step('1m') });

export const fleetSeriesQuery = z.strictObject({
  ...range,
  step: step('1h'),
  hostname: label.optional(),
  model: label.optional(),
});

const DEFAULT_RANGE_MS = 3_600_000;
const MAX_BUCKETS = 10_000;

/** Bounds in microseconds, as stored; they default to the last hour; start must come before end. */
function timeRange(query: { start_time?: string; end_time?: string }): {
  startUs: number;
  endUs: number;
} {
  const endUs = query.end_time ? microsOf(query.end_time) : Date.now() * 1000;
  const startUs = query.start_time ? microsOf(query.start_time) : endUs - DEFAULT_RANGE_MS * 1000;
  if (startUs >= endUs) {
    throw new ValidationError([{ field: 'start_time', message: 'must be before end_time' }]);
  }
  return { startUs, endUs };
}

/**
 * A range for aggregates: as timeRange, touching at most MAX_BUCKETS buckets (aligned to the
 * epoch, so a range of n steps that does not start on one touches n + 1).
 */
function bucketRange(query: { start_time?: string; end_time?: string; step: number }): {
  startUs: number;
  endUs: number;
} {
  const { startUs, endUs } = timeRange(query);
  const stepUs = query.step * 1_000_000;
  const buckets = (bucketOf(endUs - 1, stepUs) - bucketOf(startUs, stepUs)) / stepUs + 1;
  if (buckets > MAX_BUCKETS) {
    throw new ValidationError([
      { field: 'step', message: `is too small for this range: at most ${MAX_BUCKETS} buckets` },
    ]);
  }
  return { startUs, endUs };
}

/** HTTP in and out for the query API; the behaviour is in TelemetryQueryService. */
export function gpusRoutes(queries: TelemetryQueryService): Router {
  const router = apiRouter();

  router.get('/v1/gpus', async (req, res) => {
    res.json(await queries.gpus(validateQuery(gpusQuery, req.query)));
  });

  router.get('/v1/gpus/:gpuId/telemetry', async (req, res) => {
    const { gpuId } = validate(gpuParams, req.params);
    const query = validateQuery(telemetryQuery, req.query);
    const { startUs, endUs } = timeRange(query);
    res.json(
      await queries.telemetry({
        gpuId,
        startUs,
        endUs,
        metric: query.metric,
        limit: query.limit,
        cursor: query.cursor,
      }),
    );
  });

  router.get('/v1/gpus/:gpuId/metrics/:metric/series', async (req, res) => {
    const { gpuId, metric } = validate(seriesParams, req.params);
    const query = validateQuery(seriesQuery, req.query);
    const { startUs, endUs } = bucketRange(query);
    res.json(await queries.series({ gpuId, metric, startUs, endUs, stepSeconds: query.step }));
  });

  router.get('/v1/gpus/metrics/:metric/series', async (req, res) => {
    const { metric } = validate(metricParams, req.params);
    const query = validateQuery(fleetSeriesQuery, req.query);
    const { startUs, endUs } = bucketRange(query);
    res.json(
      await queries.fleetSeries({
        metric,
        startUs,
        endUs,
        stepSeconds: query.step,
        hostname: query.hostname,
        model: query.model,
      }),
    );
  });

  return router;
}
