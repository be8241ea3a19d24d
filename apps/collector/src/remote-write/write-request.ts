import { isUtf8 } from 'node:buffer';
import {
  LABEL_NAME,
  MAX_LABEL_NAME_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_SERIES_LABELS,
  MAX_TIMESTAMP_MS,
  MAX_HELP_LENGTH,
  MAX_UNIT_LENGTH,
  METRIC_NAME,
  METRIC_TYPES,
  type MetricMetadata,
  type SeriesValue,
  seriesValueOfBits,
} from '@gpu-telemetry/model';
import { storable } from '../parsing/scrape-metadata';

/**
 * Prometheus remote write 1.0's `WriteRequest`, decoded by hand: only the few messages it holds.
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
 *                  repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }   (milliseconds)
 *   MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4; string unit = 5; }
 *
 * Unknown fields are skipped as protobuf says; exemplars and native histograms are counted and
 * not stored, as are metadata entries whose family name is not a metric name. Values are read as their bits, so the stale marker is told from NaN.
 */

/** Refused: the body is not a valid request, or one this receiver cannot store. */
export class WriteRequestError extends Error {
  constructor(
    message: string,
    /** 413 for a request over a count limit, 400 otherwise. */
    readonly status: 400 | 413 = 400,
  ) {
    super(message);
  }
}

/** One series this receiver cannot store: passed over, the request's others kept. */
class SeriesRefused extends WriteRequestError {}

/** A series' labels as JSON must leave room for its samples in one queue message. */
export const MAX_LABELS_JSON_BYTES = 64 * 1024;

/** The most refusal reasons a decoded request keeps (the count has them all). */
const MAX_REASONS = 10;

export interface DecodedSeries {
  metric: string;
  /** Every label but __name__, in the order sent; empty values left out (no label, in the data model). */
  labels: Record<string, string>;
  /** Sample times, milliseconds since the epoch. */
  timestamps: number[];
  values: SeriesValue[];
}

export interface DecodedWriteRequest {
  series: DecodedSeries[];
  samples: number;
  staleMarkers: number;
  /** Type, help and unit of metric families (Prometheus sends them in requests of their own). */
  metadata: MetricMetadata[];
  /** Parts of the request that are read past and not stored. */
  ignored: { exemplars: number; histograms: number; metadata: number };
  /** Series that cannot be stored (a bad name, a label too long, a time out of range), passed over. */
  refused: { series: number; samples: number; reasons: string[] };
}

export interface WriteRequestLimits {
  /** Most series (TimeSeries) in one request. */
  maxSeries: number;
  /** Most samples in one request, all series together. */
  maxSamples: number;
  /** Latest sample time accepted (ms since the epoch). */
  maxTimestampMs: number;
  /** Earliest sample time accepted (ms since the epoch; TELEMETRY_RETENTION ago), 0 for any. */
  minTimestampMs?: number;
}

// The model's values, read once: through the package's re-exports each use would be a getter call.
const LABEL = LABEL_NAME;
const METRIC = METRIC_NAME;
const MAX_LABELS = MAX_SERIES_LABELS;
const MAX_NAME = MAX_LABEL_NAME_LENGTH;
const MAX_VALUE = MAX_LABEL_VALUE_LENGTH;
const MAX_TIME = MAX_TIMESTAMP_MS;
const valueOfBits = seriesValueOfBits;

/**
 * Where the reader is, for error messages: a series (-1: the request itself), and a label or
 * sample of it. One object per request, moved along as it is read; the path is only spelled out
 * when something is wrong, so a request that is fine builds no strings for it.
 */
interface Place {
  series: number;
  part: '' | 'labels' | 'samples';
  n: number;
}

function pathOf(place: Place, what: string): string {
  if (place.series < 0) return what;
  let path = `timeseries[${place.series}]`;
  if (place.part) path += `.${place.part}[${place.n}]`;
  return what ? `${path}.${what}` : path;
}

/** A protobuf reader over one message's bytes (moved to the next one by setting pos and end). */
class Reader {
  constructor(
    readonly buf: Buffer,
    public pos: number,
    public end: number,
    readonly place: Place,
  ) {}

  fail(what: string, problem: string): never {
    throw new WriteRequestError(`${pathOf(this.place, what)} ${problem}`);
  }

  /** An unsigned varint up to 2^53 (lengths, keys); larger is refused as no length can be that. */
  uint(what: string): number {
    let value = 0;
    for (let shift = 0; shift < 53; shift += 7) {
      if (this.pos >= this.end) this.fail(what, 'is cut short');
      const byte = this.buf[this.pos++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    return this.fail(what, 'is too large');
  }

  /**
   * A varint int64 as a number: exact up to 2^53, larger ones only approximately (callers refuse
   * them by range), and -1 for any negative one (ten bytes, the sign in the last).
   */
  int64(what: string): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) this.fail(what, 'is cut short');
      const byte = this.buf[this.pos++] as number;
      value += (byte & 0x7f) * 2 ** (7 * i);
      if (byte < 0x80) return i === 9 && byte !== 0 ? -1 : value;
    }
    return this.fail(what, 'is not a valid varint');
  }

  /** The end of a length-delimited field that starts here. */
  lengthEnd(what: string): number {
    const length = this.uint(what);
    if (length > this.end - this.pos) this.fail(what, 'runs past the end of its message');
    return this.pos + length;
  }

  string(what: string): string {
    const end = this.lengthEnd(what);
    const start = this.pos;
    this.pos = end;
    // Most label text is ASCII: read it as such; anything else must be valid UTF-8 (protobuf's rule).
    for (let i = start; i < end; i++) {
      if ((this.buf[i] as number) >= 0x80) {
        if (!isUtf8(this.buf.subarray(start, end))) this.fail(what, 'is not valid UTF-8');
        return this.buf.toString('utf8', start, end);
      }
    }
    return this.buf.toString('latin1', start, end);
  }

  /** Skips a field of an unknown number; groups (wire types 3, 4) are refused as malformed here. */
  skip(wireType: number, what: string): void {
    switch (wireType) {
      case 0:
        this.uint(what);
        return;
      case 1:
        this.fixed(8, what);
        return;
      case 2:
        this.pos = this.lengthEnd(what);
        return;
      case 5:
        this.fixed(4, what);
        return;
      default:
        this.fail(what, `has wire type ${wireType}, which this message cannot hold`);
    }
  }

  fixed(bytes: number, what: string): number {
    if (this.end - this.pos < bytes) this.fail(what, 'is cut short');
    const at = this.pos;
    this.pos += bytes;
    return at;
  }

  /** The next field's number (the wire type is `lastWireType`). */
  field(what: string): number {
    const key = this.uint(what);
    const field = Math.floor(key / 8);
    if (field === 0) this.fail(what, 'has field number 0');
    this.lastWireType = key % 8;
    return field;
  }

  lastWireType = 0;

  expect(wireType: number, what: string): void {
    if (this.lastWireType !== wireType)
      this.fail(what, `has wire type ${this.lastWireType}, not ${wireType} as the schema says`);
  }
}

/**
 * Decodes and checks a WriteRequest: every series needs a valid metric name (`__name__`), label
 * names of the data model, each once, within the label limits; every sample a time between 1970
 * (or `minTimestampMs`) and `maxTimestampMs`. A series that fails these is passed over and counted in `refused` with
 * the reason (naming the series and label), the others kept: one bad series in every batch a
 * Prometheus sends must not cost the rest. A body that is not a WriteRequest, or one over a count
 * limit, refuses the whole request.
 */
export function decodeWriteRequest(body: Uint8Array, limits: WriteRequestLimits): DecodedWriteRequest {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const out: DecodedWriteRequest = {
    series: [],
    samples: 0,
    staleMarkers: 0,
    metadata: [],
    ignored: { exemplars: 0, histograms: 0, metadata: 0 },
    refused: { series: 0, samples: 0, reasons: [] },
  };
  const place: Place = { series: -1, part: '', n: 0 };
  const r = new Reader(buf, 0, buf.length, place);
  const series = new Reader(buf, 0, 0, place);
  const inner = new Reader(buf, 0, 0, place);
  let index = 0;
  let metadataIndex = 0;
  while (r.pos < r.end) {
    place.series = -1;
    const field = r.field('a WriteRequest field');
    if (field === 1) {
      r.expect(2, 'timeseries');
      if (index >= limits.maxSeries) {
        throw new WriteRequestError(`the request holds more than ${limits.maxSeries} series`, 413);
      }
      place.series = index;
      place.part = '';
      const end = r.lengthEnd('');
      const start = r.pos;
      series.pos = start;
      series.end = end;
      const samples = out.samples;
      const staleMarkers = out.staleMarkers;
      const refusedSamples = out.refused.samples;
      let decoded: DecodedSeries | undefined;
      try {
        decoded = decodeSeries(series, inner, out, limits);
      } catch (error) {
        if (!(error instanceof SeriesRefused)) throw error;
        // None of it is stored: every sample it holds counts as refused (read or not).
        out.refused.series++;
        out.refused.samples = refusedSamples + samplesIn(series, start, end);
        out.samples = samples;
        out.staleMarkers = staleMarkers;
        if (out.refused.reasons.length < MAX_REASONS) out.refused.reasons.push(error.message);
      }
      r.pos = end;
      if (decoded) out.series.push(decoded);
      index++;
    } else if (field === 3) {
      r.expect(2, 'metadata');
      if (metadataIndex >= limits.maxSeries) {
        throw new WriteRequestError(`the request holds more than ${limits.maxSeries} metadata entries`, 413);
      }
      const end = r.lengthEnd('metadata');
      series.pos = r.pos;
      series.end = end;
      const entry = decodeMetadata(series, metadataIndex++);
      if (entry) out.metadata.push(entry);
      else out.ignored.metadata++;
      r.pos = end;
    } else {
      r.skip(r.lastWireType, `WriteRequest field ${field}`);
    }
  }
  return out;
}

/** How many samples (field 2) a TimeSeries between `start` and `end` holds, read past, not decoded. */
function samplesIn(r: Reader, start: number, end: number): number {
  r.pos = start;
  r.end = end;
  let n = 0;
  while (r.pos < r.end) {
    const field = r.field('field');
    if (field === 2 && r.lastWireType === 2) n++;
    r.skip(r.lastWireType, `field ${field}`);
  }
  return n;
}

/** One MetricMetadata, help and unit cut to their limits; undefined when its family name is not a metric name. */
function decodeMetadata(r: Reader, index: number): MetricMetadata | undefined {
  let type: MetricMetadata['type'] = 'unknown';
  let metric = '';
  let help = '';
  let unit = '';
  while (r.pos < r.end) {
    const field = r.field(`metadata[${index}]`);
    if (field === 1 && r.lastWireType === 0)
      type = METRIC_TYPES[r.uint(`metadata[${index}].type`)] ?? 'unknown';
    else if (field === 2 && r.lastWireType === 2) metric = r.string(`metadata[${index}].metric_family_name`);
    else if (field === 4 && r.lastWireType === 2) help = r.string(`metadata[${index}].help`);
    else if (field === 5 && r.lastWireType === 2) unit = r.string(`metadata[${index}].unit`);
    else r.skip(r.lastWireType, `metadata[${index}] field ${field}`);
  }
  // A family name the store cannot take costs only that entry (counted as ignored), not the request.
  if (!METRIC.test(metric) || metric.length > 256) return undefined;
  return { metric, type, help: storable(help, MAX_HELP_LENGTH), unit: storable(unit, MAX_UNIT_LENGTH) };
}

function decodeSeries(
  r: Reader,
  inner: Reader,
  out: DecodedWriteRequest,
  limits: WriteRequestLimits,
): DecodedSeries | undefined {
  const place = r.place;
  const refuse = (problem: string): never => {
    place.part = '';
    throw new SeriesRefused(`${pathOf(place, '')}${problem}`);
  };
  let metric: string | undefined;
  const labels: Record<string, string> = {};
  let labelCount = 0;
  let kept = 0;
  let empty = false;
  const timestamps: number[] = [];
  const values: SeriesValue[] = [];
  while (r.pos < r.end) {
    place.part = '';
    const field = r.field('field');
    if (field === 1) {
      place.part = 'labels';
      place.n = labelCount;
      r.expect(2, '');
      const end = r.lengthEnd('');
      inner.pos = r.pos;
      inner.end = end;
      let name = '';
      let value = '';
      while (inner.pos < inner.end) {
        const f = inner.field('field');
        if (f === 1) {
          inner.expect(2, 'name');
          name = inner.string('name');
        } else if (f === 2) {
          inner.expect(2, 'value');
          value = inner.string('value');
        } else inner.skip(inner.lastWireType, `field ${f}`);
      }
      r.pos = end;
      // Every label counts here, empty ones included (they keep their name, below): a series of
      // millions of empty labels would otherwise be gathered whole before its size is checked.
      if (++labelCount > 2 * MAX_LABELS + 1) refuse(` has more than ${2 * MAX_LABELS + 1} labels`);
      if (name === '__name__') {
        if (metric !== undefined) refuse(' has the label __name__ twice');
        if (value.length > 256 || !METRIC.test(value))
          refuse(`: the metric name ${quote(value)} is not a Prometheus metric name`);
        metric = value;
        continue;
      }
      if (name.length > MAX_NAME || !LABEL.test(name))
        refuse(`: the label name ${quote(name)} is not a Prometheus label name`);
      // Reserved for the system by the data model (and __proto__ would not survive a JS object).
      if (name.charCodeAt(0) === 95 && name.charCodeAt(1) === 95)
        refuse(`: the label name ${quote(name)} is reserved (it starts with __)`);
      if (Object.hasOwn(labels, name)) refuse(` has the label ${name} twice`);
      if (value.length > MAX_VALUE) refuse(`: the value of ${name} is longer than ${MAX_VALUE} characters`);
      if (value.includes('\u0000')) refuse(`: the value of ${name} holds a NUL character`);
      if (value === '') {
        // No label, in the data model; still one name, so it may not come again.
        labels[name] = '';
        empty = true;
        continue;
      }
      if (++kept > MAX_LABELS) refuse(` has more than ${MAX_LABELS} labels besides __name__`);
      labels[name] = value;
    } else if (field === 2) {
      place.part = 'samples';
      place.n = timestamps.length;
      r.expect(2, '');
      if (out.samples >= limits.maxSamples) {
        throw new WriteRequestError(`the request holds more than ${limits.maxSamples} samples`, 413);
      }
      const end = r.lengthEnd('');
      inner.pos = r.pos;
      inner.end = end;
      let timestamp = 0;
      let value: SeriesValue = 0;
      while (inner.pos < inner.end) {
        const f = inner.field('field');
        if (f === 1) {
          inner.expect(1, 'value');
          const p = inner.fixed(8, 'value');
          const b = inner.buf;
          // Little-endian double: its bits tell the stale marker from NaN, then the number is read.
          value = valueOfBits(b.readInt32LE(p + 4), b.readInt32LE(p), b.readDoubleLE(p));
        } else if (f === 2) {
          inner.expect(0, 'timestamp');
          timestamp = inner.int64('timestamp');
        } else inner.skip(inner.lastWireType, `field ${f}`);
      }
      r.pos = end;
      // A sample out of range costs only itself (Prometheus' own receivers drop such samples).
      const outOfRange =
        timestamp < 0 || timestamp > MAX_TIME
          ? 'is before 1970 or after 9999'
          : timestamp > limits.maxTimestampMs
            ? 'is more than a day in the future'
            : timestamp < (limits.minTimestampMs ?? 0)
              ? 'is older than TELEMETRY_RETENTION'
              : undefined;
      if (outOfRange) {
        out.refused.samples++;
        if (out.refused.reasons.length < MAX_REASONS)
          out.refused.reasons.push(`${pathOf(place, '')}: the timestamp ${timestamp} ${outOfRange}`);
        continue;
      }
      timestamps.push(timestamp);
      values.push(value);
      out.samples++;
      if (value === 'stale') out.staleMarkers++;
    } else if (field === 3) {
      r.skip(r.lastWireType, 'exemplars');
      out.ignored.exemplars++;
    } else if (field === 4) {
      r.skip(r.lastWireType, 'histograms');
      out.ignored.histograms++;
    } else {
      r.skip(r.lastWireType, `field ${field}`);
    }
  }
  if (metric === undefined) refuse(' has no __name__ label (its metric name)');
  // Characters, each at most three bytes in UTF-8 (and quotes, colon, comma): the exact size
  // only when that bound is passed.
  let chars = (metric as string).length;
  for (const name in labels) chars += name.length + (labels[name] as string).length + 6;
  if (
    chars * 3 > MAX_LABELS_JSON_BYTES &&
    Buffer.byteLength(JSON.stringify(metric)) + Buffer.byteLength(JSON.stringify(labels)) >
      MAX_LABELS_JSON_BYTES
  )
    refuse(`: its labels take more than ${MAX_LABELS_JSON_BYTES} bytes as JSON`);
  // A series with only exemplars or histograms has nothing to store here.
  if (timestamps.length === 0) return undefined;
  if (empty) for (const name in labels) if (labels[name] === '') delete labels[name];
  return { metric: metric as string, labels, timestamps, values };
}

function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

// --- encoding: what tests and benchmarks send -----------------------------------------------------

/** One series to send: its labels (__name__ among them) and its samples. */
export interface WriteSeries {
  labels: { name: string; value: string }[];
  /** Milliseconds since the epoch. */
  timestamps: number[];
  /** Values as numbers, or as their 64 bits (big end first, e.g. the stale marker 0x7ff0000000000002n). */
  values: (number | bigint)[];
}

class Writer {
  private parts: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }

  varint(n: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(n));
    const bytes: number[] = [];
    while (v >= 0x80n) {
      bytes.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    bytes.push(Number(v));
    this.push(Buffer.from(bytes));
  }

  field(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  delimited(field: number, payload: Buffer): void {
    this.field(field, 2);
    this.varint(payload.length);
    this.push(payload);
  }

  result(): Buffer {
    return Buffer.concat(this.parts, this.length);
  }
}

/** A remote write 1.0 WriteRequest (protobuf, uncompressed), values written bit for bit. */
export function encodeWriteRequest(series: WriteSeries[], metadata: MetricMetadata[] = []): Buffer {
  const out = new Writer();
  for (const m of metadata) {
    const entry = new Writer();
    entry.field(1, 0);
    entry.varint(Math.max(0, METRIC_TYPES.indexOf(m.type)));
    entry.delimited(2, Buffer.from(m.metric, 'utf8'));
    entry.delimited(4, Buffer.from(m.help, 'utf8'));
    entry.delimited(5, Buffer.from(m.unit, 'utf8'));
    out.delimited(3, entry.result());
  }
  for (const s of series) {
    const ts = new Writer();
    for (const l of s.labels) {
      const label = new Writer();
      label.delimited(1, Buffer.from(l.name, 'utf8'));
      label.delimited(2, Buffer.from(l.value, 'utf8'));
      ts.delimited(1, label.result());
    }
    s.timestamps.forEach((timestamp, i) => {
      const sample = new Writer();
      const value = s.values[i] as number | bigint;
      const bits = Buffer.alloc(8);
      if (typeof value === 'bigint') bits.writeBigUInt64LE(value);
      else bits.writeDoubleLE(value);
      sample.field(1, 1);
      sample.push(bits);
      sample.field(2, 0);
      sample.varint(timestamp);
      ts.delimited(2, sample.result());
    });
    out.delimited(1, ts.result());
  }
  return out.result();
}
