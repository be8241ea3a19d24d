import { BitReader, BitWriter, bitWidth, unzigzag, zigzag } from './bit-io';

/**
 * One series' samples in one chunk as one value ("block"), in the spirit of Prometheus' chunks
 * and VictoriaMetrics' blocks, laid out so that Postgres can decode it too (telemetry_decode):
 *
 *   header (28 bytes, big-endian)
 *     0      version (1)
 *     1..4   n, the sample count
 *     5      time unit: times are counted in 10^u microseconds (u = 0, 3 or 6)
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
  const reader = new BitReader(data, offset + groups);
  for (let g = 0, b = 0; g < count; g += GROUP, b++) {
    const end = Math.min(count, g + GROUP);
    const width = data[offset + b] as number;
    if (width === 0) into.fill(0, g, end);
    else for (let i = g; i < end; i++) into[i] = unzigzag(reader.read(width));
    reader.align();
  }
  return reader.byteOffset;
}

/** The smallest k (≤ 15) with every value exactly mantissa / 10^k, mantissa a safe integer; -1 if none. */
function decimalScale(values: Float64Array): number {
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

function writeInt64(out: Uint8Array, offset: number, value: number): void {
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigInt64(offset, BigInt(value));
}

function readInt64(data: Uint8Array, offset: number): number {
  return Number(new DataView(data.buffer, data.byteOffset, data.byteLength).getBigInt64(offset));
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

export function encodeBlock(block: Block): Buffer {
  const { times, values } = block;
  const n = times.length;
  if (n === 0 || values.length !== n)
    throw new RangeError('a block holds one or more samples, a value per time');
  let unit = 6;
  for (let i = 0; i < n && unit > 0; i++) {
    const t = times[i] as number;
    while (unit > 0 && t % (POW10[unit] as number) !== 0) unit -= 3;
  }
  const scaledTimes = new Float64Array(n);
  for (let i = 0; i < n; i++) scaledTimes[i] = (times[i] as number) / (POW10[unit] as number);
  const timeDods = differences(scaledTimes, 2);
  if (!timeDods) throw new RangeError('sample times are too far apart for one block');

  const header = new Uint8Array(HEADER_BYTES);
  header[0] = 1;
  new DataView(header.buffer).setUint32(1, n);
  header[5] = unit;
  writeInt64(header, 6, scaledTimes[0] as number);

  let mode = 0;
  let scale = 0;
  let mantissaStream: Float64Array | null = null;
  const k = decimalScale(values);
  if (k >= 0) {
    const mantissas = new Float64Array(n);
    for (let i = 0; i < n; i++) mantissas[i] = Math.round((values[i] as number) * (POW10[k] as number));
    const deltas = differences(mantissas, 1);
    const dods = differences(mantissas, 2);
    if (deltas && dods) {
      const useDods = packedBytes(dods, n - 1) < packedBytes(deltas, n - 1);
      mode = useDods ? 2 : 1;
      mantissaStream = useDods ? dods : deltas;
      scale = k;
      writeInt64(header, 20, mantissas[0] as number);
    }
  }
  header[18] = mode;
  header[19] = scale;

  const out = new BitWriter(HEADER_BYTES + n * 2 + 16);
  out.bytes(header);
  writePacked(out, timeDods, n - 1);
  new DataView(header.buffer).setUint32(14, out.length - HEADER_BYTES);
  if (mantissaStream) {
    writePacked(out, mantissaStream, n - 1);
  } else {
    const raw = new Uint8Array(n * 8);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < n; i++) view.setFloat64(i * 8, values[i] as number);
    out.bytes(raw);
  }
  const bytes = out.finish();
  bytes.set(header.subarray(14, 18), 14);
  return bytes;
}

/** How many samples a block holds, without decoding it. */
export function blockCount(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
}

export function decodeBlock(data: Uint8Array): Block {
  if (data[0] !== 1) throw new RangeError(`unknown block version ${data[0]}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const n = view.getUint32(1);
  const unit = POW10[data[5] as number] as number;
  const timeBytes = view.getUint32(14);
  const mode = data[18] as number;
  const scale = POW10[data[19] as number] as number;

  const diffs = new Float64Array(Math.max(0, n - 1));
  readPacked(data, HEADER_BYTES, n - 1, diffs);
  const times = new Float64Array(n);
  let t = readInt64(data, 6);
  let delta = 0;
  times[0] = t * unit;
  for (let i = 1; i < n; i++) {
    delta += diffs[i - 1] as number;
    t += delta;
    times[i] = t * unit;
  }

  const values = new Float64Array(n);
  const valuesAt = HEADER_BYTES + timeBytes;
  if (mode === 0) {
    for (let i = 0; i < n; i++) values[i] = view.getFloat64(valuesAt + i * 8);
  } else {
    readPacked(data, valuesAt, n - 1, diffs);
    let m = readInt64(data, 20);
    let step = 0;
    values[0] = m / scale;
    for (let i = 1; i < n; i++) {
      if (mode === 1) m += diffs[i - 1] as number;
      else {
        step += diffs[i - 1] as number;
        m += step;
      }
      values[i] = m / scale;
    }
  }
  return { times, values };
}
