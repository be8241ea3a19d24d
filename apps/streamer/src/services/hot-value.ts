/**
 * A hot sample's value in 4 bytes when it is a short decimal, as nearly every exporter's value is
 * (utilisation 87, a clock 1410, power 245.117, a ratio 0.731522): `mantissa << 4 | places`, the
 * value being exactly `mantissa / 10^places`, with a mantissa of at most 27 bits and its sign
 * (±134,217,727) and 0-9 places. Every other value (a 14-digit energy counter, 0.1 + 0.2, NaN,
 * ±Infinity, -0) keeps its 8-byte double. The row then fits in 40 bytes instead of 48: with the
 * 4-byte series id, series, value and time make 16 bytes beside the 24 of the tuple header, and
 * the unused double is a null (a bit in the header's null bitmap, which has room for it).
 *
 * A value is stored this way only when dividing the mantissa by the power of ten gives back the
 * same double, bit for bit: Postgres' float8 division (telemetry_value, migration 0029) and
 * JavaScript's are the same IEEE 754 operation, so every reader gets the double that was sent.
 */

/** The powers of ten by places; telemetry_value in SQL divides by the same doubles. */
export const POW10: readonly number[] = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/** The largest mantissa, 2^27 - 1: 28 bits with its sign, beside 4 bits of places. */
export const DECIMAL_MANTISSA_MAX = 2 ** 27 - 1;

/** The 4-byte form of `value` (an int32), or undefined where only its double holds it exactly. */
export function decimalOf(value: number): number | undefined {
  if (!Number.isFinite(value) || Object.is(value, -0)) return undefined;
  for (let places = 0; places < POW10.length; places++) {
    const scale = POW10[places] as number;
    const mantissa = Math.round(value * scale);
    if (mantissa > DECIMAL_MANTISSA_MAX || mantissa < -DECIMAL_MANTISSA_MAX) return undefined;
    if (mantissa / scale === value) return (mantissa << 4) | places;
  }
  return undefined;
}

/** The value that `decimalOf` encoded, as telemetry_value reads it in SQL. */
export function valueOfDecimal(encoded: number): number {
  return (encoded >> 4) / (POW10[encoded & 15] as number);
}
