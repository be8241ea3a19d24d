import { z } from 'zod';
import { storableText } from './storable-text';
import { messageList, METRIC_NAME } from './telemetry.schemas';

/**
 * What an exporter says of a metric family beside its samples (`# TYPE`, `# HELP`, `# UNIT`;
 * the metadata of a Prometheus remote write), as Prometheus' /api/v1/metadata answers it. Types
 * are Prometheus' names (the text format's `untyped` is `unknown`), in the order of remote
 * write's `MetricType` enum: a type's number there is its index here.
 */
export const METRIC_TYPES = [
  'unknown',
  'counter',
  'gauge',
  'histogram',
  'gaugehistogram',
  'summary',
  'info',
  'stateset',
] as const;
export type MetricType = (typeof METRIC_TYPES)[number];

/** Help texts longer than this are cut to it by whoever reads them from an exporter. */
export const MAX_HELP_LENGTH = 4096;
export const MAX_UNIT_LENGTH = 256;

export const metricMetadata = z.strictObject({
  metric: z
    .string()
    .max(256, 'must be at most 256 characters')
    .regex(METRIC_NAME, 'must be a Prometheus metric name'),
  type: z.enum(METRIC_TYPES),
  help: storableText(MAX_HELP_LENGTH),
  unit: storableText(MAX_UNIT_LENGTH),
});
export type MetricMetadata = z.infer<typeof metricMetadata>;

/** A telemetry message of metadata only: sent when a target's metadata changes, and now and then. */
export const metadataBatch = z.strictObject({
  /** Where it came from: the scraped URL, or `remote-write`. */
  source: storableText(2048),
  metadata: messageList(metricMetadata, 'metric'),
});
export type MetadataBatch = z.infer<typeof metadataBatch>;
