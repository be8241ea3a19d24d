const FRACTION = /\.(\d+)/;

/**
 * A sample's RFC 3339 time as microseconds since the epoch, exactly as Postgres stores the same
 * text (Date.parse alone would stop at milliseconds): the fraction read as a double, times a
 * million, rounded half to even (strtod then rint, in Postgres' ParseFractionalSecond). So a
 * nanosecond time ending in 500 lands where it always did, and a redelivered sample meets its key.
 */
export function microsOf(timestamp: string): number {
  const fraction = FRACTION.exec(timestamp);
  if (!fraction) return Date.parse(timestamp) * 1000;
  const whole = Date.parse(timestamp.replace(FRACTION, ''));
  const x = Number(`0.${fraction[1] as string}`) * 1_000_000;
  const floor = Math.floor(x);
  const rest = x - floor; // exact: x is below a million
  const us = rest > 0.5 || (rest === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  return whole * 1000 + us;
}
