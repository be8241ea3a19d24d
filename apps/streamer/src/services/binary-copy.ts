import type { PoolClient } from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { pgTimestamp } from './sample-time';

/**
 * COPY's binary format: reading `COPY ... TO STDOUT (FORMAT binary)`, what the streamer's readers
 * of hot rows, blocks and rollups share, and the fields its writers send. Binary COPY hands over
 * times as microseconds and values as the exact doubles stored, with no text to parse.
 */

/**
 * Series ids as an array literal, for COPY statements (which take no parameters): `bigint[]` for
 * the tables keyed by `bigint`, `int[]` for hot rows (their 4-byte `series_id`). Comparing hot rows'
 * ids with a `bigint[]` is a cross-type test that Postgres cannot hash, so a scan of many series
 * would test every row against the whole list. Whole numbers only reach the text.
 */
export const idArray = (ids: readonly number[], type: 'bigint' | 'int' = 'bigint') =>
  `'{${ids.map((id) => Math.trunc(id)).join(',')}}'::${type}[]`;

/** A time (µs since the Unix epoch) as a timestamptz literal, for COPY statements. */
export const tsLiteral = (us: number) => `'${pgTimestamp(us)}'::timestamptz`;

/** Microseconds from the Unix epoch to Postgres' (2000-01-01), the origin of binary timestamps. */
export const PG_EPOCH_US = 946_684_800_000_000;

const TWO_32 = 2 ** 32;

/**
 * Writes a bigint field (its length, then the value) at buf[at] for a binary COPY; returns where
 * the next field starts. The value, a safe integer, goes as two 32-bit halves: no BigInt.
 */
export function writeInt8Field(buf: Buffer, at: number, value: number): number {
  const high = Math.floor(value / TWO_32);
  buf.writeInt32BE(8, at);
  buf.writeInt32BE(high, at + 4);
  buf.writeUInt32BE(value - high * TWO_32, at + 8);
  return at + 12;
}

/** The bigint (a safe integer) at buf[at], a field's value or an array element's. */
export function readInt8(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) * TWO_32 + buf.readUInt32BE(at + 4);
}

/** The timestamptz at buf[at], in microseconds since the Unix epoch. */
export function readTimestamp(buf: Buffer, at: number): number {
  return readInt8(buf, at) + PG_EPOCH_US;
}

/** Writes a timestamptz field, `us` microseconds since the Unix epoch; returns where the next field starts. */
export function writeTimestampField(buf: Buffer, at: number, us: number): number {
  return writeInt8Field(buf, at, us - PG_EPOCH_US);
}

const COPY_HEADER = 11 + 4 + 4; // signature, flags, header extension length

/**
 * Runs the COPY and hands `take` the data after the header as it arrives: `take(buf, at)` reads the
 * complete rows it finds from `at` and returns where the first incomplete one starts, or -1 once it
 * has read the trailer. A row cut between two pieces is offered again whole with the next piece.
 * Buffers are never written to once handed over, so slices of them may be kept.
 */
export async function readCopyStream(
  client: PoolClient,
  statement: string,
  take: (buf: Buffer, at: number) => number,
): Promise<void> {
  const stream = client.query(copyTo(statement));
  let pending: Buffer | undefined;
  let headerDone = false;
  for await (const piece of stream as AsyncIterable<Buffer>) {
    const buf: Buffer = pending ? Buffer.concat([pending, piece]) : piece;
    let at = 0;
    if (!headerDone) {
      if (buf.length < COPY_HEADER || buf.length < COPY_HEADER + buf.readUInt32BE(15)) {
        pending = buf;
        continue;
      }
      at = COPY_HEADER + buf.readUInt32BE(15);
      headerDone = true;
    }
    at = take(buf, at);
    pending = at >= 0 && at < buf.length ? buf.subarray(at) : undefined;
  }
}

/**
 * Runs the COPY and calls `row` for each row with the buffer holding it and its fields as
 * (offset, length) pairs (length -1: null); `fields` is reused, the buffer's bytes are not.
 */
export async function readBinaryCopy(
  client: PoolClient,
  statement: string,
  row: (buf: Buffer, fields: Int32Array) => void,
): Promise<number> {
  let rows = 0;
  let fields = new Int32Array(8);
  await readCopyStream(client, statement, (buf, at) => {
    for (;;) {
      if (buf.length - at < 2) return at;
      const count = buf.readInt16BE(at);
      if (count === -1) return -1;
      if (fields.length < count * 2) fields = new Int32Array(count * 2);
      let p = at + 2;
      for (let f = 0; f < count; f++) {
        if (buf.length - p < 4) return at;
        const len = buf.readInt32BE(p);
        p += 4;
        if (len > 0 && buf.length - p < len) return at;
        fields[2 * f] = p;
        fields[2 * f + 1] = len;
        if (len > 0) p += len;
      }
      row(buf, fields);
      rows++;
      at = p;
    }
  });
  return rows;
}

/** Elements in the one-dimensional binary array at buf[at]. */
export function arrayLength(buf: Buffer, at: number): number {
  return buf.readInt32BE(at) === 0 ? 0 : buf.readInt32BE(at + 12);
}

/** Calls `element` with each element's offset and length (-1: null) of the one-dimensional binary array at buf[at]. */
export function forEachElement(
  buf: Buffer,
  at: number,
  element: (offset: number, length: number) => void,
): void {
  const n = arrayLength(buf, at);
  let p = at + 20; // dimensions, null flag, element type, then the dimension's size and lower bound
  for (let i = 0; i < n; i++) {
    const len = buf.readInt32BE(p);
    p += 4;
    element(p, len);
    if (len > 0) p += len;
  }
}
