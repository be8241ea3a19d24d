import { randomFillSync } from 'node:crypto';

/** Random bytes fetched from the OS at once: one getrandom call per ~170 trace contexts. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_BYTES));
    offset = 0;
  }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

const ALL_ZERO = /^0+$/;

/**
 * A new sampled W3C `traceparent` (version 00), for requests that arrive without one while the
 * tracing SDK is off. Ids come from a pooled buffer of OS randomness, as `crypto.randomUUID()`
 * does: two `randomBytes()` calls per request cost more than the rest of the header handling. The
 * spec forbids all-zero ids, so one (a 2^-128 chance) is drawn again.
 */
export function newTraceparent(): string {
  let traceId = randomHex(16);
  while (ALL_ZERO.test(traceId)) traceId = randomHex(16);
  let spanId = randomHex(8);
  while (ALL_ZERO.test(spanId)) spanId = randomHex(8);
  return `00-${traceId}-${spanId}-01`;
}
