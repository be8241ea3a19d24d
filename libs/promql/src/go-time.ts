// The calendar of Go's time package for what a JavaScript Date cannot hold. Prometheus's date
// functions (`hour`, `year`, `days_in_month`...) answer from `time.Unix(int64(v), 0).UTC()`: a
// value past ±8.64e12 seconds is still a date to Go, and NaN and the infinities convert to the
// smallest int64 (as amd64 converts them), so `year(vector(-Inf))` is 292277026596. The engine
// answers the same. The arithmetic below is Go 1.19-1.20's (`absDate`, `daysSinceEpoch`; the
// Prometheus 2 series is built with them): unsigned 64 bits, wrapping, as BigInts.

/** The calendar fields of a time, as Go's `Time` methods give them. */
export interface GoDate {
  year: number;
  /** 1-12. */
  month: number;
  /** 1-31. */
  day: number;
  /** 1-366. */
  dayOfYear: number;
  hour: number;
  minute: number;
  /** 0 is Sunday. */
  weekday: number;
}

const U64 = 64;
const SECONDS_PER_DAY = 86_400n;
const DAYS_PER_400_YEARS = 365n * 400n + 97n;
const DAYS_PER_100_YEARS = 365n * 100n + 24n;
const DAYS_PER_4_YEARS = 365n * 4n + 1n;
const ABSOLUTE_ZERO_YEAR = -292277022399n;
/** (absoluteZeroYear - 1) * 365.2425 days, in seconds: from Go's absolute epoch to year 1. */
const ABSOLUTE_TO_INTERNAL = ((ABSOLUTE_ZERO_YEAR - 1n) * 3_652_425n * SECONDS_PER_DAY) / 10_000n;
/** Seconds from year 1 to 1970. */
const UNIX_TO_INTERNAL = (1969n * 365n + 1969n / 4n - 1969n / 100n + 1969n / 400n) * SECONDS_PER_DAY;
const DAYS_BEFORE = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

const MIN_INT64 = -(2n ** 63n);

/** Go's int64(v) on amd64: truncated; NaN, the infinities and whatever does not fit are MinInt64. */
export function goInt64(v: number): bigint {
  return v >= -(2 ** 63) && v < 2 ** 63 ? BigInt(Math.trunc(v)) : MIN_INT64;
}

const isLeap = (year: bigint) => year % 4n === 0n && (year % 100n !== 0n || year % 400n === 0n);

/** Go's `t.abs()` of `time.Unix(sec, 0).UTC()`: seconds since its absolute epoch, wrapped to 64 bits. */
function absOfUnix(sec: bigint): bigint {
  return BigInt.asUintN(U64, sec + (UNIX_TO_INTERNAL - ABSOLUTE_TO_INTERNAL));
}

/** Go's `absDate(abs, true)`: the year, day of the year (0-based), month and day of `abs`. */
function absDate(abs: bigint): { year: bigint; yday: number; month: number; day: number } {
  let d = abs / SECONDS_PER_DAY;
  let n = d / DAYS_PER_400_YEARS;
  let y = 400n * n;
  d -= DAYS_PER_400_YEARS * n;
  n = d / DAYS_PER_100_YEARS;
  n -= n >> 2n;
  y += 100n * n;
  d -= DAYS_PER_100_YEARS * n;
  n = d / DAYS_PER_4_YEARS;
  y += 4n * n;
  d -= DAYS_PER_4_YEARS * n;
  n = d / 365n;
  n -= n >> 2n;
  y += n;
  d -= 365n * n;
  const year = BigInt.asIntN(U64, y) + ABSOLUTE_ZERO_YEAR;
  const yday = Number(d);
  let day = yday;
  if (isLeap(year)) {
    if (day > 31 + 29 - 1) day--;
    else if (day === 31 + 29 - 1) return { year, yday, month: 2, day: 29 };
  }
  let month = Math.trunc(day / 31);
  const end = DAYS_BEFORE[month + 1] as number;
  let begin: number;
  if (day >= end) {
    month++;
    begin = end;
  } else begin = DAYS_BEFORE[month] as number;
  return { year, yday, month: month + 1, day: day - begin + 1 };
}

/** The calendar fields Go gives `time.Unix(sec, 0).UTC()`. */
export function goDate(sec: bigint): GoDate {
  const abs = absOfUnix(sec);
  const { year, yday, month, day } = absDate(abs);
  return {
    year: Number(year),
    month,
    day,
    dayOfYear: yday + 1,
    hour: Number((abs % SECONDS_PER_DAY) / 3600n),
    minute: Number((abs % 3600n) / 60n),
    // absWeekday: the absolute epoch is a Monday.
    weekday: Number(((abs + SECONDS_PER_DAY) % (7n * SECONDS_PER_DAY)) / SECONDS_PER_DAY),
  };
}

/** Go's `daysSinceEpoch(year)`: days from the absolute epoch to the year's first day, wrapped. */
function daysSinceEpoch(year: bigint): bigint {
  let y = BigInt.asUintN(U64, year - ABSOLUTE_ZERO_YEAR);
  let n = y / 400n;
  y -= 400n * n;
  let d = DAYS_PER_400_YEARS * n;
  n = y / 100n;
  y -= 100n * n;
  d += DAYS_PER_100_YEARS * n;
  n = y / 4n;
  y -= 4n * n;
  d += DAYS_PER_4_YEARS * n;
  d += 365n * y;
  return BigInt.asUintN(U64, d);
}

/**
 * Prometheus's `days_in_month`: 32 less the day of `time.Date(year, month, 32, 0, 0, 0, 0,
 * time.UTC)`, the 32nd of the month rolling over into the next, as Go computes it.
 */
export function goDaysInMonth(date: GoDate): number {
  const year = BigInt(date.year);
  let d = daysSinceEpoch(year) + BigInt(DAYS_BEFORE[date.month - 1] as number);
  if (isLeap(year) && date.month >= 3) d++;
  d += 31n;
  return 32 - absDate(BigInt.asUintN(U64, d * SECONDS_PER_DAY)).day;
}
