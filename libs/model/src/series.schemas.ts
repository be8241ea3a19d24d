import { z } from 'zod';
import { isStorable, storableText } from './storable-text';
import { MAX_SAMPLES_PER_MESSAGE, messageList, METRIC_NAME } from './telemetry.schemas';

/**
 * Series of any metric, with any labels, as Prometheus remote write sends them: the payload of a
 * telemetry message whose samples are not dcgm-exporter scrapes made here. A series is exactly its
 * metric name and label set; the streamer fills GPU columns only where the labels name a GPU.
 */

/** Label names of the Prometheus data model (`__name__` is the metric, carried apart). */
export const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const MAX_SERIES_LABELS = 64;
export const MAX_LABEL_NAME_LENGTH = 256;
export const MAX_LABEL_VALUE_LENGTH = 4096;
/** Times are milliseconds since the epoch, from 1970 to the end of 9999 (what Postgres and RFC 3339 both hold). */
export const MAX_TIMESTAMP_MS = 253_402_300_799_999;

/**
 * Prometheus' stale marker: the NaN whose bits are exactly 0x7ff0000000000002. PromQL's lookback
 * ends a series at it. JSON carries no NaN at all, so on the wire it is the string "stale", apart
 * from an ordinary "NaN".
 */
export const STALE = 'stale';
export const STALE_NAN_HIGH_WORD = 0x7ff00000;
export const STALE_NAN_LOW_WORD = 0x00000002;

/** A value on the wire: a finite JSON number, "NaN", "+Inf", "-Inf", or the stale marker. */
export const seriesValue = z.union([z.number(), z.enum(['NaN', '+Inf', '-Inf', STALE])]);
export type SeriesValue = z.infer<typeof seriesValue>;

export const labelName = z
  .string()
  .max(MAX_LABEL_NAME_LENGTH, `must be at most ${MAX_LABEL_NAME_LENGTH} characters`)
  .regex(LABEL_NAME, 'must be a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)')
  .refine((name) => !name.startsWith('__'), 'must not start with __ (reserved; the metric is carried apart)');

/** One sample: [time in ms since the epoch, value]. */
export const seriesSample = z.tuple([
  z
    .number()
    .int('must be a whole number of milliseconds')
    .min(0, 'must not be before 1970')
    .max(MAX_TIMESTAMP_MS, 'must not be after 9999'),
  seriesValue,
]);
export type SeriesSample = z.infer<typeof seriesSample>;

/** One series and some of its samples, in time order as sent. */
export const seriesEntry = z.strictObject({
  metric: z
    .string()
    .max(256, 'must be at most 256 characters')
    .regex(METRIC_NAME, 'must be a Prometheus metric name'),
  /** Every label but __name__, exactly as sent; an empty value is no label (the data model's rule). */
  labels: z
    .record(
      labelName,
      storableText(MAX_LABEL_VALUE_LENGTH).refine((v) => v !== '', 'must not be empty'),
    )
    .refine(
      (labels) => Object.keys(labels).length <= MAX_SERIES_LABELS,
      `must have at most ${MAX_SERIES_LABELS} labels`,
    ),
  samples: messageList(seriesSample, 'sample'),
});
export type SeriesEntry = z.infer<typeof seriesEntry>;

// --- the fast path ------------------------------------------------------------------------------
// As for TelemetrySample: the streamer checks every series it stores, and a zod parse costs several
// microseconds each. isSeriesEntry is the same contract written out by hand; it accepts a subset
// of what the schema accepts, so anything it passes the schema passes unchanged, and anything it
// refuses goes to the schema, which names the problem. A test holds the two together.

const ENTRY_KEYS = new Set(Object.keys(seriesEntry.shape));
const SERIES_VALUES = new Set(['NaN', '+Inf', '-Inf', STALE]);

function isLabelSet(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  let count = 0;
  for (const name in value) {
    if (!Object.prototype.hasOwnProperty.call(value, name)) return false;
    const v = (value as Record<string, unknown>)[name];
    if (
      ++count > MAX_SERIES_LABELS ||
      name.length > MAX_LABEL_NAME_LENGTH ||
      !LABEL_NAME.test(name) ||
      (name.charCodeAt(0) === 95 && name.charCodeAt(1) === 95) ||
      typeof v !== 'string' ||
      v === '' ||
      v.length > MAX_LABEL_VALUE_LENGTH ||
      !isStorable(v)
    )
      return false;
  }
  return true;
}

/** True when `value` is a series entry the schema accepts as is; false means: ask the schema why. */
export function isSeriesEntry(value: unknown): value is SeriesEntry {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  if (Object.getPrototypeOf(value) !== Object.prototype) return false;
  let keys = 0;
  for (const key in value) {
    if (!ENTRY_KEYS.has(key)) return false;
    keys++;
  }
  if (keys !== ENTRY_KEYS.size) return false;
  const { metric, labels, samples } = value as Record<keyof SeriesEntry, unknown>;
  if (typeof metric !== 'string' || metric.length > 256 || !METRIC_NAME.test(metric)) return false;
  if (!isLabelSet(labels)) return false;
  if (!Array.isArray(samples) || samples.length === 0 || samples.length > MAX_SAMPLES_PER_MESSAGE)
    return false;
  for (const sample of samples) {
    if (!Array.isArray(sample) || sample.length !== 2) return false;
    const [t, v] = sample as unknown[];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t > MAX_TIMESTAMP_MS) return false;
    if (!((typeof v === 'number' && Number.isFinite(v)) || (typeof v === 'string' && SERIES_VALUES.has(v))))
      return false;
  }
  return true;
}

/**
 * The payload of one telemetry message of series: at most MAX_SAMPLES_PER_MESSAGE samples in all
 * (the series are checked one by one, so one bad series does not hide the others).
 */
export const seriesBatch = z.strictObject({
  /** Where the series came from: `remote-write`. */
  source: storableText(2048),
  series: messageList(z.unknown(), 'series', 'series'),
});
export type SeriesBatch = z.infer<typeof seriesBatch>;

/**
 * A float64 as it travels, from its two 32-bit words (big end first), so that the stale marker is
 * told from any other NaN by its bits, never by a JavaScript number (engines may change NaN bits).
 */
export function seriesValueOfBits(high: number, low: number, value: number): SeriesValue {
  if (value === value) {
    if (value === Infinity) return '+Inf';
    if (value === -Infinity) return '-Inf';
    return value;
  }
  return high >>> 0 === STALE_NAN_HIGH_WORD && low >>> 0 === STALE_NAN_LOW_WORD ? STALE : 'NaN';
}

/** A wire value as a number, or STALE for the stale marker. */
export function fromSeriesValue(value: SeriesValue): number | typeof STALE {
  if (typeof value === 'number') return value;
  if (value === 'NaN') return NaN;
  if (value === '+Inf') return Infinity;
  if (value === '-Inf') return -Infinity;
  return STALE;
}
