import { once } from 'node:events';
import { copyIn } from '@gpu-telemetry/db';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { seriesValueOfBits, STALE } from '@gpu-telemetry/model';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { decodeBlock, encodeBlock } from '../codec/block-codec';
import { decodeGorilla, encodeGorilla } from '../codec/gorilla-codec';

/**
 * Why stale markers are stored apart (telemetry_stale) and not as the special NaN among the values:
 * which paths keep the bits of Prometheus' stale NaN (0x7ff0000000000002) and which lose them.
 * Binary COPY and the block codec keep them; text (the hot rows' COPY) and JavaScript numbers do
 * not, so the marker travels as "stale" in JSON and is stored as a row of its own.
 */
const STALE_BITS = Buffer.from('7ff0000000000002', 'hex');
/** The bits of one element of a Float64Array, read as bits (never through a number). */
const rawBits = (array: Float64Array, index: number) =>
  new DataView(array.buffer, array.byteOffset)
    .getBigUint64(index * 8, true)
    .toString(16)
    .padStart(16, '0');

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  await database.pool.query('CREATE TABLE nan_bits (v double precision)');
});

afterAll(async () => {
  await database.drop();
});

/** One float8 column, written by binary COPY: exactly these 8 bytes reach Postgres. */
async function copyBinary(bits: Buffer): Promise<void> {
  const header = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
  const tuple = Buffer.alloc(2 + 4 + 8);
  tuple.writeInt16BE(1, 0);
  tuple.writeInt32BE(8, 2);
  bits.copy(tuple, 6);
  const trailer = Buffer.from([0xff, 0xff]);
  const client = await database.pool.connect();
  try {
    const stream = client.query(copyFrom('COPY nan_bits (v) FROM STDIN (FORMAT binary)'));
    stream.end(Buffer.concat([header, tuple, trailer]));
    await once(stream, 'finish');
  } finally {
    client.release();
  }
}

/** The column's values read back by binary COPY, as their bits. */
async function readBinary(): Promise<string[]> {
  const client = await database.pool.connect();
  try {
    const stream = client.query(copyTo('COPY nan_bits (v) TO STDOUT (FORMAT binary)'));
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const data = Buffer.concat(chunks);
    const out: string[] = [];
    // 19-byte header (signature, flags, extension length), then per row: count, length, 8 bytes.
    for (let at = 19; data.readInt16BE(at) !== -1; at += 2 + 4 + 8) {
      out.push(data.subarray(at + 6, at + 14).toString('hex'));
    }
    return out;
  } finally {
    client.release();
  }
}

describe('the stale NaN (0x7ff0000000000002)', () => {
  beforeEach(() => database.pool.query('TRUNCATE nan_bits'));

  it('is told apart from any other NaN by its bits, not by the number', () => {
    expect(seriesValueOfBits(0x7ff00000, 2, NaN)).toBe(STALE);
    expect(seriesValueOfBits(0x7ff80000, 0, NaN)).toBe('NaN');
    expect(seriesValueOfBits(0x7ff00000, 3, NaN)).toBe('NaN');
    expect(seriesValueOfBits(0x7ff00000, 0, Infinity)).toBe('+Inf');
  });

  it('keeps its bits in Postgres through binary COPY in and out, and through INSERT ... SELECT', async () => {
    await copyBinary(STALE_BITS);
    await database.pool.query('INSERT INTO nan_bits SELECT v FROM nan_bits');
    expect(await readBinary()).toEqual(['7ff0000000000002', '7ff0000000000002']);
  });

  it('loses them in text: Postgres prints every NaN as NaN, and reads NaN as the one canonical NaN', async () => {
    await copyBinary(STALE_BITS);
    const { rows } = await database.pool.query('SELECT v::text AS text FROM nan_bits');
    expect(rows).toEqual([{ text: 'NaN' }]);
    // The hot rows go in by text COPY: what arrives there is Postgres' own NaN.
    const client = await database.pool.connect();
    try {
      await copyIn(client, 'nan_bits (v)', ['NaN\n']);
    } finally {
      client.release();
    }
    expect(await readBinary()).toEqual(['7ff0000000000002', '7ff8000000000000']);
  });

  it('keeps them in the block codec, when they reach it as bits', () => {
    // Set as bits: a JavaScript number is no safe carrier (V8 may quiet this signalling NaN to
    // 0x7ff8000000000002 as it moves one), so nothing here ever holds the marker as a number.
    const values = new Float64Array(3);
    const view = new DataView(values.buffer);
    view.setFloat64(0, 1, true);
    view.setBigUint64(8, 0x7ff0000000000002n, true);
    view.setFloat64(16, 2, true);
    const times = new Float64Array([1e15, 1e15 + 15e6, 1e15 + 30e6]);
    const decoded = decodeBlock(encodeBlock({ times, values }));
    expect(rawBits(decoded.values, 1)).toBe('7ff0000000000002');
    const gorilla = decodeGorilla(encodeGorilla({ times, values }));
    expect(rawBits(gorilla.values, 1)).toBe('7ff0000000000002');
  });
});
