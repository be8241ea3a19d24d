import { BitReader, BitWriter, bitWidth, unzigzag, zigzag } from './bit-io';

/**
 * One series' samples in one chunk as one value ("block"), in the spirit of Prometheus' chunks
 * and VictoriaMetrics' blocks, laid out so that Postgres can decode it too (telemetry_decode):
 *
 *   header (28 bytes, big-endian)
 *     0      version (1)
 *     1..4   n, the sample count
 *     5      time unit: times are counted in 10^u microseconds (u = 0..6)
 *     6..13  the first time, in that unit
 *     14..17 byte length of the time stream
 *     18     value mode: 0 raw float64, 1 decimal deltas, 2 decimal delta-of-deltas
 *     19     decimal scale k: value = mantissa / 10^k
 *     20..27 the first mantissa
 *   time stream: n-1 delta-of-deltas of the times (the first delta counts as a delta-of-delta)
 *   value stream: n-1 deltas or delta-of-deltas of the mantissas; or n float64 in raw mode
 *
 * A stream is signed integers, zigzag-mapped, bit-packed in groups of 32 at the width of the
 * group's largest: first one width byte per group, then each group's bits, byte-aligned. A scrape
 * every 30 s with millisecond jitter costs a few bits a time; a constant costs nothing; exporter
 * values, printed with at most 6 decimals, become small integers. Values with no exact decimal
 * form (or NaN, infinities, -0) fall back to raw float64 for that block.
 */
export const HEADER_BYTES = 28;
const GROUP = 32;
const MAX_SAFE_DELTA = 2 ** 51;
const POW10 = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
];
const MAX_SCALE = 15;

export interface Block {
  /** Sample times in microseconds since the epoch, ascending, distinct. */
  times: Float64Array;
  values: Float64Array;
}

/** Bits a packed stream of these zigzagged values takes, width bytes included. */
function packedBytes(values: Float64Array, count: number): number {
  let bytes = 0;
  for (let g = 0; g < count; g += GROUP) {
    const end = Math.min(count, g + GROUP);
    let max = 0;
    for (let i = g; i < end; i++) if ((values[i] as number) > max) max = values[i] as number;
    bytes += 1 + Math.ceil(((end - g) * bitWidth(max)) / 8);
  }
  return bytes;
}

function writePacked(out: BitWriter, values: Float64Array, count: number): void {
  const widths: number[] = [];
  for (let g = 0; g < count; g += GROUP) {
    const end = Math.min(count, g + GROUP);
    let max = 0;
    for (let i = g; i < end; i++) if ((values[i] as number) > max) max = values[i] as number;
    widths.push(bitWidth(max));
  }
  out.bytes(widths);
  for (let g = 0, b = 0; g < count; g += GROUP, b++) {
    const end = Math.min(count, g + GROUP);
    const width = widths[b] as number;
    if (width > 0) for (let i = g; i < end; i++) out.write(values[i] as number, width);
    out.align();
  }
}

function readPacked(data: Uint8Array, offset: number, count: number, into: Float64Array): number {
  const groups = Math.ceil(count / GROUP);
  let bit = (offset + groups) * 8;
  // Words of 4 bytes are read while 4 bytes are left; the last few values go bit by bit.
  const wordsEnd = (data.length - 4) * 8;
  for (let g = 0, b = 0; g < count; g += GROUP, b++) {
    const end = Math.min(count, g + GROUP);
    const width = data[offset + b] as number;
    if (width === 0) {
      into.fill(0, g, end);
      continue;
    }
    if (width <= 24) {
      for (let i = g; i < end; i++) {
        let z: number;
        if (bit <= wordsEnd) {
          const at = bit >>> 3;
          const word =
            ((data[at] as number) << 24) |
            ((data[at + 1] as number) << 16) |
            ((data[at + 2] as number) << 8) |
            (data[at + 3] as number);
          z = (word << (bit & 7)) >>> (32 - width);
        } else {
          const reader = new BitReader(data);
          reader.bitOffset = bit;
          z = reader.read(width);
        }
        into[i] = (z >>> 1) ^ -(z & 1);
        bit += width;
      }
    } else {
      const reader = new BitReader(data);
      reader.bitOffset = bit;
      for (let i = g; i < end; i++) into[i] = unzigzag(reader.read(width));
      bit = reader.bitOffset;
    }
    bit = Math.ceil(bit / 8) * 8;
  }
  return bit / 8;
}

/** The smallest k (≤ 15) with every value exactly mantissa / 10^k, mantissa a safe integer; -1 if none (or a NaN, an infinity, a -0). */
export function decimalScale(values: Float64Array): number {
  let k = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (!Number.isFinite(v) || Object.is(v, -0)) return -1;
    while (!exactAt(v, k)) if (++k > MAX_SCALE) return -1;
  }
  for (let i = 0; i < values.length; i++) if (!exactAt(values[i] as number, k)) return -1;
  return k;
}

function exactAt(v: number, k: number): boolean {
  const p = POW10[k] as number;
  const m = Math.round(v * p);
  return Math.abs(m) <= Number.MAX_SAFE_INTEGER && m / p === v;
}

/** A safe integer as a big-endian int64 (high word signed, low word unsigned: no BigInt on the hot path). */
function writeInt64(out: Uint8Array, offset: number, value: number): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const high = Math.floor(value / 0x100000000);
  view.setInt32(offset, high);
  view.setUint32(offset + 4, value - high * 0x100000000);
}

function readInt64(data: Uint8Array, offset: number): number {
  return readInt32(data, offset) * 0x100000000 + readUint32(data, offset + 4);
}

function readInt32(data: Uint8Array, at: number): number {
  return (
    ((data[at] as number) << 24) |
    ((data[at + 1] as number) << 16) |
    ((data[at + 2] as number) << 8) |
    (data[at + 3] as number)
  );
}

function readUint32(data: Uint8Array, at: number): number {
  return readInt32(data, at) >>> 0;
}

/** Delta-of-deltas (or deltas) of `xs`, zigzagged, into a new array; null when one is too large to pack. */
function differences(xs: Float64Array, order: 1 | 2): Float64Array | null {
  const out = new Float64Array(Math.max(0, xs.length - 1));
  let previousDelta = 0;
  for (let i = 1; i < xs.length; i++) {
    const delta = (xs[i] as number) - (xs[i - 1] as number);
    const d = order === 1 ? delta : delta - previousDelta;
    if (Math.abs(d) > MAX_SAFE_DELTA || Math.abs(delta) > MAX_SAFE_DELTA) return null;
    out[i - 1] = zigzag(d);
    previousDelta = delta;
  }
  return out;
}

/** Times in the largest unit that holds them exactly (10^u µs), and their packed delta-of-deltas. */
function timeStream(times: Float64Array): { unit: number; first: number; dods: Float64Array } {
  const n = times.length;
  let unit = 6;
  for (let i = 0; i < n && unit > 0; i++) {
    const t = times[i] as number;
    while (unit > 0 && t % (POW10[unit] as number) !== 0) unit--;
  }
  const scaled = new Float64Array(n);
  for (let i = 0; i < n; i++) scaled[i] = (times[i] as number) / (POW10[unit] as number);
  const dods = differences(scaled, 2);
  if (!dods) throw new RangeError('sample times are too far apart for one block');
  return { unit, first: scaled[0] as number, dods };
}

/** A column of values: decimal mantissas (deltas or delta-of-deltas, packed) or raw doubles. */
interface EncodedColumn {
  mode: number;
  scale: number;
  first: number;
  stream: Float64Array | null;
}

function encodeColumn(values: Float64Array): EncodedColumn {
  const n = values.length;
  const k = decimalScale(values);
  if (k >= 0) {
    const mantissas = new Float64Array(n);
    for (let i = 0; i < n; i++) mantissas[i] = Math.round((values[i] as number) * (POW10[k] as number));
    const deltas = differences(mantissas, 1);
    const dods = differences(mantissas, 2);
    if (deltas && dods) {
      const useDods = packedBytes(dods, n - 1) < packedBytes(deltas, n - 1);
      return {
        mode: useDods ? 2 : 1,
        scale: k,
        first: mantissas[0] as number,
        stream: useDods ? dods : deltas,
      };
    }
  }
  return { mode: 0, scale: 0, first: 0, stream: null };
}

function writeColumnBody(out: BitWriter, column: EncodedColumn, values: Float64Array): void {
  if (column.stream) {
    writePacked(out, column.stream, values.length - 1);
    return;
  }
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat64(i * 8, values[i] as number);
  out.bytes(raw);
}

function readColumnBody(
  data: Uint8Array,
  at: number,
  n: number,
  mode: number,
  scale: number,
  first: number,
  into: Float64Array,
  scratch: Float64Array,
): number {
  if (mode === 0) {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let i = 0; i < n; i++) into[i] = view.getFloat64(at + i * 8);
    return at + n * 8;
  }
  const end = readPacked(data, at, n - 1, scratch);
  const p = POW10[scale] as number;
  let m = first;
  let step = 0;
  into[0] = m / p;
  for (let i = 1; i < n; i++) {
    if (mode === 1) m += scratch[i - 1] as number;
    else {
      step += scratch[i - 1] as number;
      m += step;
    }
    into[i] = m / p;
  }
  return end;
}

/**
 * What sample blocks and column blocks share: the header's first 18 bytes (version, count, time
 * unit, first time), the rest of it as `tail` writes it (bytes 18..27), and the time stream. The
 * caller writes the values, then `finish` fills in the time stream's length.
 */
function startBlock(
  version: number,
  times: Float64Array,
  capacity: number,
  tail: (header: Uint8Array) => void,
): { out: BitWriter; finish(): Buffer } {
  const n = times.length;
  const time = timeStream(times);
  const header = new Uint8Array(HEADER_BYTES);
  header[0] = version;
  new DataView(header.buffer).setUint32(1, n);
  header[5] = time.unit;
  writeInt64(header, 6, time.first);
  tail(header);
  const out = new BitWriter(capacity);
  out.bytes(header);
  writePacked(out, time.dods, n - 1);
  const timeBytes = out.length - HEADER_BYTES;
  return {
    out,
    finish() {
      const bytes = out.finish();
      new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(14, timeBytes);
      return bytes;
    },
  };
}

export function encodeBlock(block: Block): Buffer {
  const { times, values } = block;
  const n = times.length;
  if (n === 0 || values.length !== n)
    throw new RangeError('a block holds one or more samples, a value per time');
  const column = encodeColumn(values);
  const started = startBlock(1, times, HEADER_BYTES + n * 2 + 16, (header) => {
    header[18] = column.mode;
    header[19] = column.scale;
    writeInt64(header, 20, column.first);
  });
  writeColumnBody(started.out, column, values);
  return started.finish();
}

/** How many samples a block holds, without decoding it. */
export function blockCount(data: Uint8Array): number {
  return readUint32(data, 1);
}

function readTimes(data: Uint8Array, n: number, scratch: Float64Array, into?: Float64Array): Float64Array {
  const unit = POW10[data[5] as number] as number;
  readPacked(data, HEADER_BYTES, n - 1, scratch);
  const times = into ?? new Float64Array(n);
  let t = readInt64(data, 6);
  let delta = 0;
  times[0] = t * unit;
  for (let i = 1; i < n; i++) {
    delta += scratch[i - 1] as number;
    t += delta;
    times[i] = t * unit;
  }
  return times;
}

export function decodeBlock(data: Uint8Array): Block {
  if (data[0] !== 1) throw new RangeError(`not a sample block (version ${data[0]})`);
  const n = readUint32(data, 1);
  const scratch = new Float64Array(Math.max(0, n - 1));
  const times = readTimes(data, n, scratch);
  const values = new Float64Array(n);
  readColumnBody(
    data,
    HEADER_BYTES + readUint32(data, 14),
    n,
    data[18] as number,
    data[19] as number,
    readInt64(data, 20),
    values,
    scratch,
  );
  return { times, values };
}

/**
 * Decodes sample blocks into the same arrays (grown as needed), for readers that keep little of
 * each block or copy it out: after decode(), times[0..n) and values[0..n) hold the block; after
 * decodeAt(data, at), times[at..at+n) and values[at..at+n), what is before `at` kept, so a series'
 * blocks can lie one after another. Views taken before the arrays grow still hold what they held.
 */
export class BlockDecoder {
  times = new Float64Array(256);
  values = new Float64Array(256);
  private scratch = new Float64Array(256);

  decode(data: Uint8Array): number {
    return this.decodeAt(data, 0);
  }

  decodeAt(data: Uint8Array, at: number): number {
    if (data[0] !== 1) throw new RangeError(`not a sample block (version ${data[0]})`);
    const n = readUint32(data, 1);
    if (at + n > this.times.length) {
      const times = new Float64Array((at + n) * 2);
      const values = new Float64Array((at + n) * 2);
      times.set(this.times.subarray(0, at));
      values.set(this.values.subarray(0, at));
      this.times = times;
      this.values = values;
    }
    if (n > this.scratch.length) this.scratch = new Float64Array(n * 2);
    readTimes(data, n, this.scratch, at === 0 ? this.times : this.times.subarray(at));
    readColumnBody(
      data,
      HEADER_BYTES + readUint32(data, 14),
      n,
      data[18] as number,
      data[19] as number,
      readInt64(data, 20),
      at === 0 ? this.values : this.values.subarray(at),
      this.scratch,
    );
    return n;
  }
}

/**
 * Several columns of values over the same times (version 2): the block header with no value
 * column of its own (bytes 18..27 zero), then per column a 14-byte head (mode, scale, first
 * mantissa, body length) and its body, laid out as a block's value stream.
 */
export function encodeColumns(times: Float64Array, columns: Float64Array[]): Buffer {
  const n = times.length;
  if (n === 0 || columns.some((c) => c.length !== n)) throw new RangeError('columns need one value per time');
  const block = startBlock(2, times, HEADER_BYTES + n * (2 + columns.length * 2) + 16, (header) => {
    header[18] = columns.length;
  });
  for (const values of columns) {
    const column = encodeColumn(values);
    const body = new BitWriter(n * 2 + 16);
    writeColumnBody(body, column, values);
    const bytes = body.finish();
    const head = new Uint8Array(14);
    head[0] = column.mode;
    head[1] = column.scale;
    writeInt64(head, 2, column.first);
    new DataView(head.buffer).setUint32(10, bytes.length);
    block.out.bytes(head);
    block.out.bytes(bytes);
  }
  return block.finish();
}

export function decodeColumns(data: Uint8Array): { times: Float64Array; columns: Float64Array[] } {
  const decoder = new ColumnDecoder();
  const n = decoder.decode(data);
  return {
    times: decoder.times.slice(0, n),
    columns: decoder.columns.slice(0, data[18] as number).map((c) => c.slice(0, n)),
  };
}

/**
 * Decodes column blocks one after another into the same arrays (grown as needed), for readers of
 * many blocks: after decode(), times[0..n) and columns[c][0..n) hold the block.
 */
export class ColumnDecoder {
  times = new Float64Array(64);
  columns: Float64Array[] = [];
  /** How many columns the last block decoded has (columns may hold more arrays, from earlier ones). */
  columnCount = 0;
  private scratch = new Float64Array(64);

  decode(data: Uint8Array): number {
    if (data[0] !== 2) throw new RangeError(`not a column block (version ${data[0]})`);
    const n = readUint32(data, 1);
    const count = data[18] as number;
    this.columnCount = count;
    if (n > this.times.length) {
      this.times = new Float64Array(n * 2);
      this.scratch = new Float64Array(n * 2);
      this.columns = [];
    }
    while (this.columns.length < count) this.columns.push(new Float64Array(this.times.length));
    readTimes(data, n, this.scratch, this.times);
    let at = HEADER_BYTES + readUint32(data, 14);
    for (let c = 0; c < count; c++) {
      readColumnBody(
        data,
        at + 14,
        n,
        data[at] as number,
        data[at + 1] as number,
        readInt64(data, at + 2),
        this.columns[c] as Float64Array,
        this.scratch,
      );
      at += 14 + readUint32(data, at + 10);
    }
    return n;
  }
}
