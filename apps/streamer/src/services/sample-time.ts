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

/**
 * Microseconds since the epoch as RFC 3339 in UTC: milliseconds as toISOString writes them, and
 * six fraction digits where the time has a part of a millisecond (so times 0.4 ms apart differ).
 */
export function isoOfMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString();
  const below = us - ms * 1000;
  return below === 0 ? iso : `${iso.slice(0, -1)}${String(below).padStart(3, '0')}Z`;
}
