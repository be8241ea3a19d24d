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

/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in µs (both exact doubles). */
const MIN_TIMESTAMP_US = -62_135_596_800_000_000;
const MAX_TIMESTAMP_US = 253_402_300_799_000_000;

/**
 * Microseconds since the epoch as a timestamptz literal, exactly: written into COPY statements
 * (which take no parameters) as constants, or bound as text parameters, so Postgres prunes
 * partitions when it plans them.
 */
export function pgTimestamp(us: number): string {
  // A bound past the years 1-9999 reads as the nearest of them: nothing is stored beyond, and the
  // ISO form of such a year (+010000-..., -000001-...) is not one Postgres reads.
  const clamped = Math.min(MAX_TIMESTAMP_US, Math.max(MIN_TIMESTAMP_US, us));
  const ms = Math.floor(clamped / 1000);
  const micro = clamped - ms * 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(Math.round(micro)).padStart(3, '0')}Z`;
}

/**
 * Microseconds since the epoch as RFC 3339 in UTC, as the query API shows a stored time:
 * milliseconds as toISOString writes them, and six fraction digits where the time has a part of
 * a millisecond (so times 0.4 ms apart differ).
 */
export function isoOfMicros(us: number): string {
  const text = pgTimestamp(us);
  return text.endsWith('000Z') ? `${text.slice(0, -4)}Z` : text;
}
