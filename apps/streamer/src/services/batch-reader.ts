import { fieldErrors } from '@gpu-telemetry/service-kit';
import {
  FIRST_TIME_MS,
  type FrameSample,
  frameRowProblem,
  frameRowValueProblem,
  frameSampleProblem,
  fromSampleValue,
  fromSeriesValue,
  type GpuColumns,
  gpuColumnsOf,
  isSampleValue,
  isSeriesEntry,
  isTelemetryFrame,
  isTelemetrySample,
  type SampleGroup,
  metadataBatch,
  type MetricMetadata,
  STALE,
  seriesBatch,
  type SeriesEntry,
  seriesEntry,
  type TelemetrySample,
  telemetryBatch,
  type TelemetryFrame,
  telemetryFrame,
  telemetrySample,
} from '@gpu-telemetry/model';
import type { GpuSighting } from './telemetry-write.queries';
import { PG_EPOCH_US } from './binary-copy';
import { isoOfMicros, microsOf, pgTimestamp } from './sample-time';
import { SeriesCache } from './series-cache';

// Reading a leased batch: each message's samples checked and gathered, column by column, with the
// series each belongs to, and what is wrong with the rest named by field. IngestService stores
// what this accepts.

const FUTURE_MS = 24 * 3_600_000;

/**
 * The first time stored to the microsecond: times travel as µs in doubles, since the Unix epoch
 * and, to and from Postgres by binary COPY, since 2000-01-01; before it, one of them is past 2^53
 * and distinct times would be one.
 */
const FIRST_STORED_US = PG_EPOCH_US - Number.MAX_SAFE_INTEGER;
export const FIRST_STORED_TIME = isoOfMicros(FIRST_STORED_US);

/** A message's problems, named by field, and how many of its samples they refused. */
export interface Refusal {
  problems: string[];
  samples: number;
}

/** How many elements `value[key]` has, when it is an array (0 otherwise). */
function lengthOf(value: unknown, key: string): number {
  const list =
    typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  return Array.isArray(list) ? list.length : 0;
}

/** The samples of a frame's row: its values that are not null (one, if it is not a row at all). */
function samplesOfRow(row: unknown): number {
  if (!Array.isArray(row)) return 1;
  let n = 0;
  for (let k = 2; k < row.length; k++) if (row[k] !== null) n++;
  return n;
}

/**
 * A message refused whole by its envelope: its problems, and the samples it carried as far as
 * they can be counted (a frame's rows' values or its samples, a write's series' samples, samples).
 */
function envelopeRefusal(error: Parameters<typeof fieldErrors>[0] | string[], payload: unknown): Refusal {
  const problems = Array.isArray(error)
    ? error
    : fieldErrors(error).map((e) => `${e.field === 'body' ? 'payload' : e.field}: ${e.message}`);
  const record = (typeof payload === 'object' && payload !== null ? payload : {}) as Record<string, unknown>;
  let samples = lengthOf(record, 'samples');
  if (Array.isArray(record['rows'])) for (const row of record['rows']) samples += samplesOfRow(row);
  if (Array.isArray(record['series']))
    for (const entry of record['series']) samples += lengthOf(entry, 'samples');
  return { problems, samples };
}

/** A series sent as its metric and label set (remote write), its GPU columns read from the labels. */
export interface LabelledSeries {
  kind: 'labelled';
  metric: string;
  labels: Record<string, string>;
  gpu: GpuColumns | null;
  /** Its series cache key, made once for all of its samples. */
  key: string;
}

/** A series of a scrape: dcgm-exporter's GPU fields and labels, and its metric. */
export interface ScrapedSeries extends SampleGroup {
  kind: 'scraped';
  metricName: string;
  /** Its series cache key, made once for all of its samples. */
  key: string;
  /** Its id, while the series cache's generation is still `generation`. */
  id?: number;
  generation?: number;
}

/**
 * A batch's samples ready to store, from any kind of message, column by column: a batch holds
 * thousands, and an object each would live through its round trips into the old generation.
 */
export class Accepted {
  /** Each sample's series. */
  readonly of: (ScrapedSeries | LabelledSeries)[] = [];
  /** Milliseconds since the epoch. */
  readonly at: number[] = [];
  /** Microseconds since the epoch: the time stored (and written back as text by pgTimestamp). */
  readonly us: number[] = [];
  /** The value; NaN for a stale marker. */
  readonly value: number[] = [];
  /** The indexes of the stale markers, ascending. */
  readonly stale: number[] = [];

  get length(): number {
    return this.of.length;
  }

  add(of: ScrapedSeries | LabelledSeries, at: number, us: number, value: number | typeof STALE): void {
    if (value === STALE) this.stale.push(this.of.length);
    this.of.push(of);
    this.at.push(at);
    this.us.push(us);
    this.value.push(value === STALE ? NaN : value);
  }
}

export const isScraped = (of: ScrapedSeries | LabelledSeries): of is ScrapedSeries => of.kind === 'scraped';

function scrapedSeries(group: SampleGroup, metricName: string): ScrapedSeries {
  const of = {
    gpuId: group.gpuId,
    gpuIndex: group.gpuIndex,
    device: group.device,
    modelName: group.modelName,
    hostname: group.hostname,
    container: group.container,
    pod: group.pod,
    namespace: group.namespace,
    labels: group.labels,
    metricName,
  };
  // Every field set from the start: one shape for every series, whatever it is given later.
  return {
    kind: 'scraped',
    ...of,
    key: SeriesCache.keyOf(of),
    id: undefined,
    generation: undefined,
  };
}

/**
 * Reads a batch's messages into samples (Accepted). A message carries a scrape's GPU samples (a
 * frame: `groups`, `metrics`, `times` and `rows` or `samples`; or, as collectors sent them before
 * frames, `samples` of whole objects), series of any metric with their labels (`series`, from
 * remote write), or metadata. Every sample is checked: the valid ones are taken, the rest named by
 * field. Kept from batch to batch: the series of frames (see `framed`).
 */
export class BatchReader {
  /**
   * The series of frames, by group (its JSON) and metric, kept from message to message with their
   * ids: a scrape's sample finds its series by a short metric name, not by making and hashing its
   * key. Starts over with the series cache, and past as many series as it holds.
   */
  private readonly framed = new Map<string, Map<string, ScrapedSeries>>();
  private framedCount = 0;
  /** The characters of the memo's keys, bounded as the series cache's are (maxKeyChars). */
  private framedChars = 0;
  private framedGeneration = 0;

  constructor(
    /** Samples older than this are refused (they would be dropped by retention anyway); 0: no limit. */
    private readonly retentionMs: number,
    /** The series cache, whose generation and size the frames' series follow. */
    private readonly series: SeriesCache,
  ) {}

  /**
   * Appends the message's valid samples to `accepted`; returns its problems, named by field, and
   * how many samples they refused (a message refused whole: the samples it carried, as far as
   * they can be counted).
   */
  read(payload: unknown, now: number, accepted: Accepted, described: Map<string, MetricMetadata>): Refusal {
    if (typeof payload === 'object' && payload !== null && 'groups' in payload) {
      return this.readFrame(payload, now, accepted);
    }
    if (typeof payload === 'object' && payload !== null && 'series' in payload) {
      return this.readSeries(payload, now, accepted);
    }
    if (typeof payload === 'object' && payload !== null && 'metadata' in payload && !('samples' in payload)) {
      return { problems: this.readMetadata(payload, described), samples: 0 };
    }
    const envelope = telemetryBatch.safeParse(payload);
    if (!envelope.success) return envelopeRefusal(envelope.error, payload);
    const problems: string[] = [];
    let refused = 0;
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
          refused++;
          continue;
        }
        sample = parsed.data;
      }
      const at = Date.parse(sample.timestamp);
      const late = this.outOfRange(at, now, microsOf(sample.timestamp));
      if (late) {
        problems.push(`samples[${index}].timestamp: ${late}`);
        refused++;
      } else
        accepted.add(
          scrapedSeries(sample, sample.metricName),
          at,
          microsOf(sample.timestamp),
          fromSampleValue(sample.value),
        );
    }
    return { problems, samples: refused };
  }

  /**
   * A frame (a scrape, each GPU's fields, metric name and time sent once): the envelope is
   * checked whole, then each time, and each row and value (or each `[g, m, t, v]` sample of the
   * other form); a time is read once per message, a series once while the memo keeps it.
   */
  private readFrame(payload: object, now: number, accepted: Accepted): Refusal {
    let frame: TelemetryFrame;
    if (isTelemetryFrame(payload)) frame = payload;
    else {
      // Off the fast path: the schema names what is wrong (or takes what the check is stricter on).
      const envelope = telemetryFrame.safeParse(payload);
      if (!envelope.success) return envelopeRefusal(envelope.error, payload);
      frame = envelope.data;
    }
    const problems: string[] = [];
    let refused = 0;
    const times = frame.times.map((timestamp, t) => {
      const at = Date.parse(timestamp);
      const us = microsOf(timestamp);
      const late = this.outOfRange(at, now, us);
      if (late) problems.push(`times[${t}]: ${late}`);
      return { at, us, late: late !== undefined };
    });
    // The schema refuses a time sent twice; two spellings of one instant (Z and +00:00, or
    // fractions that round to one microsecond) would as well give a series two values at one time.
    const instants = new Map<number, number>();
    for (const [t, { us }] of times.entries()) {
      const earlier = instants.get(us);
      if (earlier !== undefined)
        return envelopeRefusal([`times[${t}]: is the same instant as times[${earlier}]`], payload);
      instants.set(us, t);
    }
    if (
      this.framedGeneration !== this.series.generation ||
      this.framedCount >= this.series.maxEntries ||
      this.framedChars >= this.series.maxKeyChars
    ) {
      this.framed.clear();
      this.framedCount = 0;
      this.framedChars = 0;
      this.framedGeneration = this.series.generation;
    }
    // A group's entry is made when a sample of it is taken, so a bad frame adds nothing.
    const groups = frame.groups.map((group) => ({
      group,
      metrics: undefined as Map<string, ScrapedSeries> | undefined,
      /** This frame's series of the group, by metric index: the maps are asked once per series. */
      series: [] as (ScrapedSeries | undefined)[],
    }));
    const metricsOf = (g: (typeof groups)[number]) => {
      if (g.metrics) return g.metrics;
      const key = JSON.stringify(g.group);
      g.metrics = this.framed.get(key);
      if (!g.metrics) {
        this.framed.set(key, (g.metrics = new Map()));
        this.framedCount++; // counted as a series too: the entry holds its key
        this.framedChars += key.length;
      }
      return g.metrics;
    };
    /** The series of group `g`'s samples of metric `m`, made when first needed. */
    const seriesOf = (entry: (typeof groups)[number], m: number): ScrapedSeries => {
      let of = entry.series[m];
      if (!of) {
        const metrics = metricsOf(entry);
        const metricName = frame.metrics[m] as string;
        of = metrics.get(metricName);
        if (!of) {
          metrics.set(metricName, (of = scrapedSeries(entry.group, metricName)));
          this.framedCount++;
          this.framedChars += of.key.length;
        }
        entry.series[m] = of;
      }
      return of;
    };
    if (frame.rows) {
      const width = frame.metrics.length + 2;
      for (let r = 0; r < frame.rows.length; r++) {
        const row = frame.rows[r] as unknown[];
        const problem = frameRowProblem(frame, row);
        if (problem) {
          problems.push(`rows[${r}]${problem}`);
          refused += samplesOfRow(row);
          continue;
        }
        const time = times[row[1] as number] as (typeof times)[number];
        if (time.late) {
          refused += samplesOfRow(row); // said once, of its time
          continue;
        }
        const entry = groups[row[0] as number] as (typeof groups)[number];
        for (let k = 2; k < width; k++) {
          const value = row[k];
          if (value === null) continue;
          if (!isSampleValue(value)) {
            problems.push(`rows[${r}]${frameRowValueProblem(k)}`);
            refused++;
          } else accepted.add(seriesOf(entry, k - 2), time.at, time.us, fromSampleValue(value));
        }
      }
      return { problems, samples: refused };
    }
    const samples = frame.samples ?? [];
    for (let index = 0; index < samples.length; index++) {
      const raw = samples[index];
      const problem = frameSampleProblem(frame, raw);
      if (problem) {
        problems.push(`samples[${index}]${problem}`);
        refused++;
        continue;
      }
      const [g, m, t, value] = raw as FrameSample;
      const time = times[t] as (typeof times)[number];
      if (time.late) {
        refused++; // said once, of its time
        continue;
      }
      accepted.add(
        seriesOf(groups[g] as (typeof groups)[number], m),
        time.at,
        time.us,
        fromSampleValue(value),
      );
    }
    return { problems, samples: refused };
  }

  /** A message of metadata: all of it is taken, or none (the message is dead-lettered). */
  private readMetadata(payload: object, described: Map<string, MetricMetadata>): string[] {
    const envelope = metadataBatch.safeParse(payload);
    if (!envelope.success) {
      return fieldErrors(envelope.error).map(
        (e) => `${e.field === 'body' ? 'payload' : e.field}: ${e.message}`,
      );
    }
    // Later messages of the batch say it later: theirs stands.
    for (const entry of envelope.data.metadata) described.set(entry.metric, entry);
    return [];
  }

  /** A message of series (remote write): each series is checked on its own, then each sample's time. */
  private readSeries(payload: object, now: number, accepted: Accepted): Refusal {
    const envelope = seriesBatch.safeParse(payload);
    if (!envelope.success) return envelopeRefusal(envelope.error, payload);
    const problems: string[] = [];
    let refused = 0;
    const { series } = envelope.data;
    for (let index = 0; index < series.length; index++) {
      const raw = series[index];
      let entry: SeriesEntry;
      if (isSeriesEntry(raw)) entry = raw;
      else {
        // Off the fast path: the schema says what is wrong.
        const parsed = seriesEntry.safeParse(raw);
        if (!parsed.success) {
          for (const e of fieldErrors(parsed.error, ['series', index]))
            problems.push(`${e.field}: ${e.message}`);
          refused += Math.max(1, lengthOf(raw, 'samples'));
          continue;
        }
        entry = parsed.data;
      }
      const { metric, labels, samples } = entry;
      const of: LabelledSeries = {
        kind: 'labelled',
        metric,
        labels,
        gpu: gpuColumnsOf(labels),
        key: SeriesCache.keyOfLabelSet(metric, labels),
      };
      for (let k = 0; k < samples.length; k++) {
        const [at, value] = samples[k] as [number, Parameters<typeof fromSeriesValue>[0]];
        const late = this.outOfRange(at, now, at * 1000);
        if (late) {
          problems.push(`series[${index}].samples[${k}][0]: ${late}`);
          refused++;
        } else accepted.add(of, at, at * 1000, fromSeriesValue(value));
      }
    }
    return { problems, samples: refused };
  }

  /** Why a sample time (ms, and µs as stored) cannot be stored, or undefined when it can. */
  private outOfRange(at: number, now: number, us: number): string | undefined {
    if (at > now + FUTURE_MS) return 'is more than a day in the future';
    // Postgres takes no year 0 (JavaScript writes 1 BC so); it would fail the batch's statements.
    if (at < FIRST_TIME_MS) return 'is before 0001-01-01T00:00:00Z';
    if (!(us >= FIRST_STORED_US))
      return `is before ${FIRST_STORED_TIME}, the first time stored to the microsecond`;
    if (this.retentionMs > 0 && at < now - this.retentionMs) return 'is older than TELEMETRY_RETENTION';
    return undefined;
  }
}

/** The GPUs the samples were taken from (stale markers and series without a GPU say nothing of one). */
export function sightings(accepted: Accepted): GpuSighting[] {
  const { at, us, stale } = accepted;
  // Each GPU once, with its first and last sample and its metrics. A batch's samples come a GPU's
  // at a time (a frame's row, a remote-write series), so the GPU of the sample before is asked first.
  const byGpu = new Map<string, Sighted>();
  let last: Sighted | undefined;
  let k = 0; // the next stale marker, which says nothing of its GPU
  for (let i = 0; i < accepted.length; i++) {
    if (i === stale[k]) {
      k++;
      continue;
    }
    const of = accepted.of[i] as ScrapedSeries | LabelledSeries;
    const gpu = isScraped(of) ? of : of.gpu;
    if (!gpu) continue;
    let seen = last !== undefined && last.gpu.gpuId === gpu.gpuId ? last : byGpu.get(gpu.gpuId);
    if (!seen) byGpu.set(gpu.gpuId, (seen = { gpu, first: i, last: i, metrics: new Set() }));
    const time = at[i] as number;
    if (time < (at[seen.first] as number)) seen.first = i;
    else if (time > (at[seen.last] as number)) seen.last = i;
    seen.metrics.add(isScraped(of) ? of.metricName : of.metric);
    last = seen;
  }
  return [...byGpu.values()].map(({ gpu, first, last, metrics }) => ({
    gpuId: gpu.gpuId,
    gpuIndex: gpu.gpuIndex,
    device: gpu.device,
    modelName: gpu.modelName,
    hostname: gpu.hostname,
    // As stored, to the microsecond: Postgres reads this form whatever text the sender wrote.
    firstSeen: pgTimestamp(us[first] as number),
    lastSeen: pgTimestamp(us[last] as number),
    metrics: [...metrics].sort(),
  }));
}

/** A GPU of a batch as `sightings` gathers it: its first and last sample (indexes) and its metrics. */
interface Sighted {
  gpu: GpuColumns | ScrapedSeries;
  first: number;
  last: number;
  metrics: Set<string>;
}
