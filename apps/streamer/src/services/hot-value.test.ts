import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { StreamerDatabase } from '../streamer.database';
import { DECIMAL_MANTISSA_MAX, decimalOf, valueOfDecimal } from './hot-value';

let db: TestDatabase<StreamerDatabase>;

beforeAll(async () => {
  db = await createTestDatabase<StreamerDatabase>();
});

afterAll(async () => {
  await db.drop();
});

/** A deterministic stream of numbers in [0, 1) (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Decimals as an exporter prints them: up to 9 places, parsed from text like any sample. */
function printedDecimals(n: number): number[] {
  const next = random(42);
  return Array.from({ length: n }, () => {
    const places = Math.floor(next() * 10);
    const digits = Math.floor(next() * DECIMAL_MANTISSA_MAX) * (next() < 0.5 ? -1 : 1);
    const text = String(Math.abs(digits)).padStart(places + 1, '0');
    const point = text.length - places;
    return Number(`${digits < 0 ? '-' : ''}${text.slice(0, point)}.${text.slice(point) || '0'}`);
  });
}

describe('hot values in 4 bytes (value_dec)', () => {
  it('hold the short decimals exporters send, reading back the same double', () => {
    const values = [
      0,
      1,
      -1,
      87,
      1410,
      81_000,
      245.117,
      -0.731522,
      0.5,
      1e-9,
      0.000017,
      DECIMAL_MANTISSA_MAX,
      -DECIMAL_MANTISSA_MAX,
    ];
    for (const value of [...values, ...printedDecimals(20_000)]) {
      const decimal = decimalOf(value);
      expect(decimal).toBeDefined();
      expect(
        Number.isInteger(decimal) && (decimal as number) >= -(2 ** 31) && (decimal as number) < 2 ** 31,
      ).toBe(true);
      expect(Object.is(valueOfDecimal(decimal as number), value)).toBe(true);
    }
  });

  it('leave every other value to its double', () => {
    for (const value of [
      NaN,
      Infinity,
      -Infinity,
      -0,
      0.1 + 0.2,
      5e-324,
      1e-10,
      DECIMAL_MANTISSA_MAX + 1,
      -DECIMAL_MANTISSA_MAX - 1,
      123_456_789_012_345,
      Math.PI,
      1.7976931348623157e308,
    ])
      expect(decimalOf(value)).toBeUndefined();
  });

  it('never change a double: any value given a decimal reads back bit for bit', () => {
    const next = random(7);
    const view = new DataView(new ArrayBuffer(8));
    for (let i = 0; i < 100_000; i++) {
      // Random bit patterns, and random doubles near short decimals (a last digit off).
      view.setUint32(0, Math.floor(next() * 2 ** 32));
      view.setUint32(4, Math.floor(next() * 2 ** 32));
      const bits = view.getFloat64(0);
      const near = Math.round(next() * 1e6) / 1e3 + (next() < 0.5 ? 1e-13 : 0);
      for (const value of [bits, near]) {
        const decimal = decimalOf(value);
        if (decimal !== undefined) expect(Object.is(valueOfDecimal(decimal), value)).toBe(true);
      }
    }
  });

  it('are read by Postgres (telemetry_value) as the same doubles', async () => {
    const values = [0, 87, -1410, 245.117, -0.731522, 1e-9, DECIMAL_MANTISSA_MAX, ...printedDecimals(5_000)];
    const decimals = values.map((v) => decimalOf(v) as number);
    const { rows } = await db.pool.query<{ v: number[]; d: number }>(
      `SELECT array_agg(telemetry_value(NULL, d) ORDER BY i) AS v,
              telemetry_value(1.5, 7) AS d
       FROM unnest($1::int[]) WITH ORDINALITY AS u(d, i)`,
      [decimals],
    );
    expect(rows[0]?.v.map(Number)).toEqual(values);
    expect(Number(rows[0]?.d)).toBe(1.5);
  });
});
