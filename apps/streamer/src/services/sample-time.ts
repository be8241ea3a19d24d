const FRACTION = /\.(\d+)/;

/**
 * A sample's RFC 3339 time as microseconds since the epoch, rounded to the microsecond as Postgres
 * rounds it when it stores the same text (Date.parse alone would stop at milliseconds).
 */
export function microsOf(timestamp: string): number {
  const fraction = FRACTION.exec(timestamp);
  if (!fraction) return Date.parse(timestamp) * 1000;
  const digits = fraction[1] as string;
  const whole = Date.parse(timestamp.replace(FRACTION, ''));
  let us = Number(digits.slice(0, 6).padEnd(6, '0'));
  if (digits.length > 6 && (digits[6] as string) >= '5') us += 1;
  return whole * 1000 + us;
}
