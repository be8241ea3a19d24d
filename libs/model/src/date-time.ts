import { z } from 'zod';

/** The first and last instants of the years 1-9999 (UTC), in ms: the times stored and read. */
export const FIRST_TIME_MS = Date.parse('0001-01-01T00:00:00Z');
export const LAST_TIME_MS = Date.parse('9999-12-31T23:59:59.999Z');

/**
 * An RFC 3339 date-time with an offset, in UTC from the year 1 to 9999: what Postgres and
 * toISOString both write (the year 0, or 10000 reached through an offset, they do not).
 */
export const dateTime = (message = 'must be an RFC 3339 date-time such as 2026-01-02T03:04:05Z') =>
  z.iso.datetime({ offset: true, message }).refine((text) => {
    const ms = Date.parse(text);
    return Number.isNaN(ms) || (ms >= FIRST_TIME_MS && ms <= LAST_TIME_MS); // not a date-time: said above
  }, 'must fall between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z');
