import { z } from 'zod';
import { GPU_ID, GPU_ID_MESSAGE } from './gpu-labels';
import { LOWER_UUID, uuid } from './queue.schemas';
import { isStorable, storableText } from './storable-text';

/** The queue topic the collector publishes to and the streamer consumes. */
export const TELEMETRY_TOPIC = 'telemetry';
/** Samples per queue message: one target's scrape is split into messages of at most this many. */
export const MAX_SAMPLES_PER_MESSAGE = 1000;

/**
 * A list in a telemetry message: at least one `item`, at most MAX_SAMPLES_PER_MESSAGE; errors name
 * the items `one` (and `many`).
 */
export const messageList = <T extends z.ZodType>(item: T, one: string, many = `${one}s`) =>
  z
    .array(item)
    .min(1, `must contain at least one ${one}`)
    .max(MAX_SAMPLES_PER_MESSAGE, `must contain at most ${MAX_SAMPLES_PER_MESSAGE} ${many}`);

export const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** JSON has no NaN or infinities; exporters do. They travel as these strings. */
export const sampleValue = z.union([z.number(), z.enum(['NaN', '+Inf', '-Inf'])]);
export type SampleValue = z.infer<typeof sampleValue>;

/** Whether `v` is a sample value as a message carries it (sampleValue, finite numbers only). */
export function isSampleValue(v: unknown): v is SampleValue {
  return (typeof v === 'number' && Number.isFinite(v)) || v === 'NaN' || v === '+Inf' || v === '-Inf';
}

/**
 * The longest sample time taken: RFC 3339 with nanoseconds and an offset is 35 characters.
 * Postgres reads no longer date-time (it refuses one past ~128 characters, and would fail every
 * batch that carried it).
 */
export const MAX_SAMPLE_TIME_LENGTH = 40;
const SAMPLE_TIME = z.iso.datetime({ offset: true, message: 'must be an RFC 3339 date-time' });
const sampleTime = SAMPLE_TIME.max(
  MAX_SAMPLE_TIME_LENGTH,
  `must be at most ${MAX_SAMPLE_TIME_LENGTH} characters (an RFC 3339 date-time, at most nanoseconds)`,
);

/**
 * One GPU metric sample as it travels from collector to streamer. `uuid` is deterministic (a v5
 * UUID of GPU, metric, labels and sample time), so a sample scraped once is stored once however
 * often its message is redelivered.
 */
export const telemetrySample = z.strictObject({
  uuid,
  /** The GPU's UUID as the exporter reports it, e.g. GPU-5fd4f087-86f3-7a43-b711-4771313afc50. */
  gpuId: z.string().regex(GPU_ID, GPU_ID_MESSAGE),
  gpuIndex: z.number().int('must be a whole number').min(0).max(65_535).nullable(),
  device: storableText(128).nullable(),
  modelName: storableText(256).nullable(),
  hostname: storableText(256).nullable(),
  metricName: z.string().max(256).regex(METRIC_NAME, 'must be a Prometheus metric name'),
  value: sampleValue,
  /** When the sample was taken (scrape time, the exporter's own timestamp, or CSV replay time). */
  timestamp: sampleTime,
  container: storableText(256).nullable(),
  pod: storableText(256).nullable(),
  namespace: storableText(256).nullable(),
  /** Every other label the exporter sent (pci_bus_id, DCGM_FI_DRIVER_VERSION, GPU_I_ID, ...). */
  labels: z
    .record(storableText(256), storableText(4096))
    .refine((labels) => Object.keys(labels).length <= 64, 'must have at most 64 labels'),
});

export type TelemetrySample = z.infer<typeof telemetrySample>;

/**
 * A sample as a scrape or a CSV replay makes it: a TelemetrySample without its uuid. Frames do not
 * carry one (the streamer derives a sample's id from its series and time, where the API shows it),
 * so the collector makes none.
 */
export const scrapedSample = telemetrySample.omit({ uuid: true });
export type ScrapedSample = z.infer<typeof scrapedSample>;

// --- the fast path --------------------------------------------------------------------------------
// The streamer checks every sample it stores, and a zod parse of this object costs several times
// the rest of its work on the sample (and the collector every sample it scrapes). isTelemetrySample
// and isScrapedSample are the same contracts written out by hand: it accepts a subset of what the schema accepts (the
// schema's own datetime pattern; lower-case UUIDs only, which the schema would lower-case anyway),
// so every sample it passes is one the schema passes unchanged. Anything it refuses goes through
// the schema, which then names the problem. A test holds the two together.

const SAMPLE_KEYS = new Set(Object.keys(telemetrySample.shape));
const SCRAPED_KEYS = new Set(Object.keys(scrapedSample.shape));
const DATETIME_PATTERN = SAMPLE_TIME._zod.pattern as RegExp;
const isSampleTime = (text: string) => text.length <= MAX_SAMPLE_TIME_LENGTH && DATETIME_PATTERN.test(text);
const MAX_LABELS = 64;

const isText = (value: unknown, max: number): value is string =>
  typeof value === 'string' && value.length <= max && isStorable(value);
const isNullableText = (value: unknown, max: number): boolean => value === null || isText(value, max);

/** An object from JSON.parse (or written as a literal): not an array, a Date, or a class instance. */
function isPlainRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isLabels(value: unknown): boolean {
  if (!isPlainRecord(value)) return false;
  let count = 0;
  for (const key in value) {
    // JSON.parse makes `__proto__` an own key; the schema's record leaves it out.
    if (++count > MAX_LABELS || key === '__proto__' || !isText(key, 256) || !isText(value[key], 4096))
      return false;
  }
  return true;
}

/** True when `value` is a sample the schema accepts as is; false means: ask the schema why. */
export function isTelemetrySample(value: unknown): value is TelemetrySample {
  if (!hasExactly(value, SAMPLE_KEYS)) return false;
  const uuid = value['uuid'];
  return typeof uuid === 'string' && LOWER_UUID.test(uuid) && hasSampleFields(value);
}

/** isTelemetrySample for a sample without its uuid (scrapedSample). */
export function isScrapedSample(value: unknown): value is ScrapedSample {
  return hasExactly(value, SCRAPED_KEYS) && hasSampleFields(value);
}

/** A plain object with exactly these keys. */
function hasExactly(value: unknown, keys: ReadonlySet<string>): value is Record<string, unknown> {
  if (!isPlainRecord(value)) return false;
  let count = 0;
  for (const key in value) {
    if (!keys.has(key)) return false;
    count++;
  }
  return count === keys.size;
}

/** Every field of a sample but its uuid as the schema takes it unchanged. */
function hasSampleFields(value: Record<string, unknown>): boolean {
  const s = value as Record<keyof ScrapedSample, unknown>;
  return (
    hasGroupFields(value) &&
    typeof s.metricName === 'string' &&
    s.metricName.length <= 256 &&
    METRIC_NAME.test(s.metricName) &&
    isSampleValue(s.value) &&
    typeof s.timestamp === 'string' &&
    isSampleTime(s.timestamp)
  );
}

/** The fields a frame's group shares with its samples (the GPU's columns and labels), as the schema takes them unchanged. */
function hasGroupFields(value: Record<string, unknown>): boolean {
  const s = value as Record<keyof ScrapedSample, unknown>;
  const i = s.gpuIndex;
  return (
    typeof s.gpuId === 'string' &&
    GPU_ID.test(s.gpuId) &&
    (i === null || (typeof i === 'number' && Number.isInteger(i) && i >= 0 && i <= 65_535)) &&
    isNullableText(s.device, 128) &&
    isNullableText(s.modelName, 256) &&
    isNullableText(s.hostname, 256) &&
    isNullableText(s.container, 256) &&
    isNullableText(s.pod, 256) &&
    isNullableText(s.namespace, 256) &&
    isLabels(s.labels)
  );
}

/** The payload of one message on the telemetry topic. */
export const telemetryBatch = z.strictObject({
  /** Where the samples came from: the scraped URL, or csv:<file>. */
  source: storableText(2048),
  samples: messageList(z.unknown(), 'sample'),
});

// --- frames: a scrape's samples, each shared string sent once -----------------------------------

/** The GPU columns and other labels that samples of a frame share (a sample's fields but four). */
export const sampleGroup = scrapedSample.omit({
  metricName: true,
  value: true,
  timestamp: true,
});
export type SampleGroup = z.infer<typeof sampleGroup>;

/**
 * The payload of one message on the telemetry topic as the collector sends a scrape: a frame. In
 * a scrape every GPU's fields and labels, every metric name and the scrape time recur on hundreds
 * of samples; a frame sends each once, in `groups`, `metrics` and `times`, and its samples in one
 * of two forms:
 * - `rows`: `[group, time, v0, v1, ...]`, a group's samples at one time, one value per metric in
 *   `metrics` order and `null` where it has none. A scrape's GPUs share their metrics, so a sample
 *   is its value and a comma: ~5 bytes, where `[g,m,t,v]` takes ~14, and the streamer parses a few
 *   arrays a message instead of one per sample.
 * - `samples`: `[group, metric, time, value]`, three indexes and the value. The collector sends it
 *   where rows would be mostly nulls (and collectors before rows sent only it).
 * A value is a number, "NaN", "+Inf" or "-Inf". A sample so sent is exactly the telemetrySample of
 * those fields (its uuid is derived, not sent).
 */
export const telemetryFrame = z
  .strictObject({
    source: storableText(2048),
    groups: messageList(sampleGroup, 'group'),
    metrics: messageList(telemetrySample.shape.metricName, 'metric'),
    times: messageList(telemetrySample.shape.timestamp, 'time'),
    rows: messageList(z.unknown(), 'row').optional(),
    samples: messageList(z.unknown(), 'sample').optional(),
  })
  .superRefine((frame, ctx) => {
    if (frame.rows === undefined && frame.samples === undefined)
      ctx.addIssue({ code: 'custom', path: ['rows'], message: 'is required (or samples)' });
    else if (frame.rows !== undefined && frame.samples !== undefined)
      ctx.addIssue({ code: 'custom', path: ['samples'], message: 'must not be sent with rows' });
    // Each is sent once: a second would give one series two values at one time, and one be lost.
    for (const list of ['metrics', 'times'] as const) {
      const first = new Map<string, number>();
      frame[list].forEach((text, i) => {
        const earlier = first.get(text);
        if (earlier === undefined) first.set(text, i);
        else ctx.addIssue({ code: 'custom', path: [list, i], message: `repeats ${list}[${earlier}]` });
      });
    }
  });
export type TelemetryFrame = z.infer<typeof telemetryFrame>;

// The frame's own fast path, as isTelemetrySample's above: the envelope checked by hand (its lists'
// lengths, each group's fields, the metric names and times, each once), so that zod is asked only
// about a frame it refuses, to name the problem. Rows and samples are checked one by one afterwards
// (frameRowProblem, frameSampleProblem). A test holds it to the schema.

const GROUP_KEYS = new Set(Object.keys(sampleGroup.shape));
const FRAME_KEYS = new Set(['source', 'groups', 'metrics', 'times', 'rows', 'samples']);

const isMessageList = (value: unknown): value is unknown[] =>
  Array.isArray(value) && value.length >= 1 && value.length <= MAX_SAMPLES_PER_MESSAGE;

/** Each a string `valid` takes, none twice. */
function isDistinctTexts(list: unknown[], valid: (text: string) => boolean): boolean {
  const seen = new Set<string>();
  for (const text of list) {
    if (typeof text !== 'string' || !valid(text) || seen.has(text)) return false;
    seen.add(text);
  }
  return true;
}

/** True when `value` is a frame the schema accepts as is; false means: ask the schema why. */
export function isTelemetryFrame(value: unknown): value is TelemetryFrame {
  if (!isPlainRecord(value)) return false;
  let keys = 0;
  for (const key in value) {
    if (!FRAME_KEYS.has(key)) return false;
    keys++;
  }
  const { source, groups, metrics, times, rows, samples } = value;
  // rows or samples, one of them: source, three lists and one.
  if (keys !== 5 || (rows === undefined) === (samples === undefined)) return false;
  if (!isText(source, 2048) || !isMessageList(rows ?? samples)) return false;
  if (!isMessageList(groups) || !isMessageList(metrics) || !isMessageList(times)) return false;
  for (const group of groups) if (!hasExactly(group, GROUP_KEYS) || !hasGroupFields(group)) return false;
  return (
    isDistinctTexts(metrics, (name) => name.length <= 256 && METRIC_NAME.test(name)) &&
    isDistinctTexts(times, isSampleTime)
  );
}

/** One sample of a frame's `samples`: indexes into its groups, metrics and times, and the value. */
export type FrameSample = [group: number, metric: number, time: number, value: SampleValue];

/** One row of a frame's `rows`: a group, a time, then one value (or null) per metric. */
export type FrameRow = [group: number, time: number, ...values: (SampleValue | null)[]];

const isIndex = (value: unknown, length: number): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < length;

/**
 * Why `value` is not a sample of `frame` (a message naming the field, relative to the sample), or
 * undefined when it is one.
 */
export function frameSampleProblem(frame: TelemetryFrame, value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== 4) return ': must be [group, metric, time, value]';
  const [g, m, t, v] = value as unknown[];
  if (!isIndex(g, frame.groups.length))
    return `[0]: must be the index of one of the ${frame.groups.length} groups`;
  if (!isIndex(m, frame.metrics.length))
    return `[1]: must be the index of one of the ${frame.metrics.length} metrics`;
  if (!isIndex(t, frame.times.length))
    return `[2]: must be the index of one of the ${frame.times.length} times`;
  if (!isSampleValue(v)) return '[3]: must be a finite number, "NaN", "+Inf" or "-Inf"';
  return undefined;
}

/**
 * Why `value` is not a row of `frame` (relative to the row), its values apart, or undefined when
 * it is one; a value that is not null is then checked with frameRowValueProblem.
 */
export function frameRowProblem(frame: TelemetryFrame, value: unknown): string | undefined {
  if (!Array.isArray(value) || value.length !== frame.metrics.length + 2)
    return `: must be [group, time, then one value or null for each of the ${frame.metrics.length} metrics]`;
  if (!isIndex(value[0], frame.groups.length))
    return `[0]: must be the index of one of the ${frame.groups.length} groups`;
  if (!isIndex(value[1], frame.times.length))
    return `[1]: must be the index of one of the ${frame.times.length} times`;
  return undefined;
}

/** What is wrong with a row's value at `k` (its index in the row) that is neither null nor a sample value. */
export function frameRowValueProblem(k: number): string {
  return `[${k}]: must be a finite number, "NaN", "+Inf", "-Inf" or null`;
}

/**
 * A frame's samples written out whole (uuid apart): what a reader of the frame sees. Rows give
 * theirs metric by metric, each metric's in row order (a scrape's own order, where every metric
 * lists its GPUs alike).
 */
export function frameSamples(frame: TelemetryFrame): ScrapedSample[] {
  const whole = (g: number, m: number, t: number, value: SampleValue) => ({
    ...(frame.groups[g] as SampleGroup),
    metricName: frame.metrics[m] as string,
    timestamp: frame.times[t] as string,
    value,
  });
  if (frame.samples) return (frame.samples as FrameSample[]).map(([g, m, t, value]) => whole(g, m, t, value));
  const rows = (frame.rows ?? []) as FrameRow[];
  return frame.metrics.flatMap((_, m) =>
    rows.flatMap((row) => {
      const value = row[m + 2];
      return value === null || value === undefined ? [] : [whole(row[0], m, row[1], value)];
    }),
  );
}

export function toSampleValue(value: number): SampleValue {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return value;
}

export function fromSampleValue(value: SampleValue): number {
  if (value === 'NaN') return NaN;
  if (value === '+Inf') return Infinity;
  if (value === '-Inf') return -Infinity;
  return value;
}
