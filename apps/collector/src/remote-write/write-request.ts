import {
  LABEL_NAME,
  MAX_LABEL_NAME_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_SERIES_LABELS,
  MAX_TIMESTAMP_MS,
  METRIC_NAME,
  type SeriesValue,
  seriesValueOfBits,
} from '@gpu-telemetry/model';

/**
 * Prometheus remote write 1.0's `WriteRequest`, decoded by hand: only the few messages it holds.
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
 *                  repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }   (milliseconds)
 *
 * Unknown fields are skipped as protobuf says; exemplars, native histograms and metadata are
 * counted and not stored. Values are read as their bits, so the stale marker is told from NaN.
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
  /** Parts of the request that are read past and not stored. */
  ignored: { exemplars: number; histograms: number; metadata: number };
}

export interface WriteRequestLimits {
  /** Most series (TimeSeries) in one request. */
  maxSeries: number;
  /** Most samples in one request, all series together. */
  maxSamples: number;
  /** Latest sample time accepted (ms since the epoch). */
  maxTimestampMs: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A protobuf reader over one message's bytes; every read checks the bounds. */
class Reader {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  /** An unsigned varint up to 2^53 (lengths, keys); larger is refused as no length can be that. */
  uint(what: string): number {
    let value = 0;
    for (let shift = 0; shift < 53; shift += 7) {
      if (this.pos >= this.end) throw new WriteRequestError(`${what} is cut short`);
      const byte = this.buf[this.pos++] as number;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    throw new WriteRequestError(`${what} is too large`);
  }

  /**
   * A varint int64 as a number: exact up to 2^53, larger ones only approximately (callers refuse
   * them by range), and -1 for any negative one (ten bytes, the sign in the last).
   */
  int64(what: string): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WriteRequestError(`${what} is cut short`);
      const byte = this.buf[this.pos++] as number;
      value += (byte & 0x7f) * 2 ** (7 * i);
      if (byte < 0x80) return i === 9 && byte !== 0 ? -1 : value;
    }
    throw new WriteRequestError(`${what} is not a valid varint`);
  }

  /** The end of a length-delimited field that starts here. */
  lengthEnd(what: string): number {
    const length = this.uint(what);
    if (length > this.end - this.pos) throw new WriteRequestError(`${what} runs past the end of its message`);
    return this.pos + length;
  }

  string(what: string): string {
    const end = this.lengthEnd(what);
    try {
      return utf8.decode(this.buf.subarray(this.pos, end));
    } catch {
      throw new WriteRequestError(`${what} is not valid UTF-8`);
    } finally {
      this.pos = end;
    }
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
        throw new WriteRequestError(`${what} has wire type ${wireType}, which this message cannot hold`);
    }
  }

  fixed(bytes: number, what: string): number {
    if (this.end - this.pos < bytes) throw new WriteRequestError(`${what} is cut short`);
    const at = this.pos;
    this.pos += bytes;
    return at;
  }

  /** The next field's number and wire type. */
  key(what: string): { field: number; wireType: number } {
    const key = this.uint(what);
    const field = Math.floor(key / 8);
    if (field === 0) throw new WriteRequestError(`${what} has field number 0`);
    return { field, wireType: key % 8 };
  }
}

function expectWireType(actual: number, expected: number, what: string): void {
  if (actual !== expected)
    throw new WriteRequestError(`${what} has wire type ${actual}, not ${expected} as the schema says`);
}

/**
 * Decodes and checks a WriteRequest: every series needs a valid metric name (`__name__`), label
 * names of the data model, each once, within the label limits; every sample a time between 1970
 * and `maxTimestampMs`. The first problem refuses the whole request (a 4xx the sender does not
 * retry), naming the series and label.
 */
export function decodeWriteRequest(buf: Uint8Array, limits: WriteRequestLimits): DecodedWriteRequest {
  const out: DecodedWriteRequest = {
    series: [],
    samples: 0,
    staleMarkers: 0,
    ignored: { exemplars: 0, histograms: 0, metadata: 0 },
  };
  const r = new Reader(buf, 0, buf.length);
  let index = 0;
  while (r.pos < r.end) {
    const { field, wireType } = r.key('a WriteRequest field');
    if (field === 1) {
      expectWireType(wireType, 2, 'timeseries');
      if (index >= limits.maxSeries) {
        throw new WriteRequestError(`the request holds more than ${limits.maxSeries} series`, 413);
      }
      const end = r.lengthEnd(`timeseries[${index}]`);
      const series = decodeSeries(new Reader(buf, r.pos, end), index, out, limits);
      r.pos = end;
      if (series) out.series.push(series);
      index++;
    } else if (field === 3) {
      expectWireType(wireType, 2, 'metadata');
      r.skip(wireType, 'metadata');
      out.ignored.metadata++;
    } else {
      r.skip(wireType, `WriteRequest field ${field}`);
    }
  }
  return out;
}

function decodeSeries(
  r: Reader,
  index: number,
  out: DecodedWriteRequest,
  limits: WriteRequestLimits,
): DecodedSeries | undefined {
  const at = `timeseries[${index}]`;
  let metric: string | undefined;
  const labels: Record<string, string> = {};
  const names = new Set<string>();
  let labelCount = 0;
  const timestamps: number[] = [];
  const values: SeriesValue[] = [];
  while (r.pos < r.end) {
    const { field, wireType } = r.key(`a field of ${at}`);
    if (field === 1) {
      expectWireType(wireType, 2, `${at}.labels[${labelCount}]`);
      const end = r.lengthEnd(`${at}.labels[${labelCount}]`);
      const { name, value } = decodeLabel(new Reader(r.buf, r.pos, end), `${at}.labels[${labelCount}]`);
      r.pos = end;
      labelCount++;
      if (names.has(name)) throw new WriteRequestError(`${at} has the label ${name} twice`);
      names.add(name);
      if (name === '__name__') {
        if (value.length > 256 || !METRIC_NAME.test(value))
          throw new WriteRequestError(
            `${at}: the metric name ${quote(value)} is not a Prometheus metric name`,
          );
        metric = value;
        continue;
      }
      if (name.length > MAX_LABEL_NAME_LENGTH || !LABEL_NAME.test(name))
        throw new WriteRequestError(`${at}: the label name ${quote(name)} is not a Prometheus label name`);
      // Reserved for the system by the data model (and __proto__ would not survive a JS object).
      if (name.startsWith('__'))
        throw new WriteRequestError(`${at}: the label name ${quote(name)} is reserved (it starts with __)`);
      if (value.length > MAX_LABEL_VALUE_LENGTH)
        throw new WriteRequestError(
          `${at}: the value of ${name} is longer than ${MAX_LABEL_VALUE_LENGTH} characters`,
        );
      if (value.includes('\u0000'))
        throw new WriteRequestError(`${at}: the value of ${name} holds a NUL character`);
      if (value === '') continue;
      if (Object.keys(labels).length >= MAX_SERIES_LABELS)
        throw new WriteRequestError(`${at} has more than ${MAX_SERIES_LABELS} labels besides __name__`);
      labels[name] = value;
    } else if (field === 2) {
      expectWireType(wireType, 2, `${at}.samples[${timestamps.length}]`);
      if (out.samples >= limits.maxSamples) {
        throw new WriteRequestError(`the request holds more than ${limits.maxSamples} samples`, 413);
      }
      const end = r.lengthEnd(`${at}.samples[${timestamps.length}]`);
      const what = `${at}.samples[${timestamps.length}]`;
      const { timestamp, value } = decodeSample(new Reader(r.buf, r.pos, end), what);
      r.pos = end;
      if (timestamp < 0 || timestamp > MAX_TIMESTAMP_MS)
        throw new WriteRequestError(`${what}: the timestamp ${timestamp} is before 1970 or after 9999`);
      if (timestamp > limits.maxTimestampMs)
        throw new WriteRequestError(`${what}: the timestamp ${timestamp} is more than a day in the future`);
      timestamps.push(timestamp);
      values.push(value);
      out.samples++;
      if (value === 'stale') out.staleMarkers++;
    } else if (field === 3) {
      r.skip(wireType, `${at}.exemplars`);
      out.ignored.exemplars++;
    } else if (field === 4) {
      r.skip(wireType, `${at}.histograms`);
      out.ignored.histograms++;
    } else {
      r.skip(wireType, `${at} field ${field}`);
    }
  }
  if (metric === undefined) throw new WriteRequestError(`${at} has no __name__ label (its metric name)`);
  // A series with only exemplars or histograms has nothing to store here.
  if (timestamps.length === 0) return undefined;
  return { metric, labels, timestamps, values };
}

function decodeLabel(r: Reader, at: string): { name: string; value: string } {
  let name = '';
  let value = '';
  while (r.pos < r.end) {
    const { field, wireType } = r.key(`a field of ${at}`);
    if (field === 1) {
      expectWireType(wireType, 2, `${at}.name`);
      name = r.string(`${at}.name`);
    } else if (field === 2) {
      expectWireType(wireType, 2, `${at}.value`);
      value = r.string(`${at}.value`);
    } else r.skip(wireType, `${at} field ${field}`);
  }
  return { name, value };
}

function decodeSample(r: Reader, at: string): { timestamp: number; value: SeriesValue } {
  let timestamp = 0;
  let value: SeriesValue = 0;
  while (r.pos < r.end) {
    const { field, wireType } = r.key(`a field of ${at}`);
    if (field === 1) {
      expectWireType(wireType, 1, `${at}.value`);
      const p = r.fixed(8, `${at}.value`);
      const b = r.buf;
      // Little-endian double: its bits decide stale marker or NaN, then the number is read.
      const low =
        (b[p] as number) |
        ((b[p + 1] as number) << 8) |
        ((b[p + 2] as number) << 16) |
        ((b[p + 3] as number) << 24);
      const high =
        (b[p + 4] as number) |
        ((b[p + 5] as number) << 8) |
        ((b[p + 6] as number) << 16) |
        ((b[p + 7] as number) << 24);
      const number = new DataView(b.buffer, b.byteOffset + p, 8).getFloat64(0, true);
      value = seriesValueOfBits(high, low, number);
    } else if (field === 2) {
      expectWireType(wireType, 0, `${at}.timestamp`);
      timestamp = r.int64(`${at}.timestamp`);
    } else r.skip(wireType, `${at} field ${field}`);
  }
  return { timestamp, value };
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
export function encodeWriteRequest(series: WriteSeries[]): Buffer {
  const out = new Writer();
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
