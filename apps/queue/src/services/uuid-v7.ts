import { randomFillSync } from 'node:crypto';

/**
 * Time-ordered UUIDs (RFC 9562 version 7) for the ids the queue makes up: generated message ids
 * and lease ids. Both are B-tree keys. Random (v4) keys land on a random leaf page each, so every
 * insert dirties a different page, splits leave pages half full, and after each checkpoint every
 * touched page is written to the WAL whole. Time-ordered keys append to the right edge instead.
 *
 * Layout: 48 bits of Unix milliseconds, the version, a 12-bit counter (RFC 9562 method 1, so ids
 * from this process are strictly increasing even within one millisecond), the variant, then 62
 * random bits. The counter starts at a random value below 2048 each millisecond; when it runs
 * out the timestamp borrows the next millisecond, so order holds under any burst.
 */
export function uuidv7(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = randomCounterStart();
  } else if (++counter > 0xfff) {
    lastMs += 1;
    counter = randomCounterStart();
  }
  if (poolOffset + 8 > POOL_BYTES) refill();
  const pool = randomPool;
  const r = poolOffset;
  poolOffset += 8;

  const ms = lastMs;
  const high = Math.floor(ms / 0x10000); // top 32 bits of the 48-bit time
  const low = ms % 0x10000; // bottom 16 bits
  return (
    hex8(high) +
    '-' +
    hex4(low) +
    '-' +
    hex4(0x7000 | counter) +
    '-' +
    hex4(0x8000 | (((pool[r] as number) & 0x3f) << 8) | (pool[r + 1] as number)) +
    '-' +
    hex4(((pool[r + 2] as number) << 8) | (pool[r + 3] as number)) +
    hex8(
      ((pool[r + 4] as number) * 0x1000000 +
        (((pool[r + 5] as number) << 16) | ((pool[r + 6] as number) << 8) | (pool[r + 7] as number))) >>>
        0,
    )
  );
}

/** The millisecond timestamp a version 7 UUID carries. */
export function uuidv7Time(id: string): number {
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

const POOL_BYTES = 8 * 256;
const randomPool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;
let lastMs = 0;
let counter = 0;

function refill(): void {
  randomFillSync(randomPool);
  poolOffset = 0;
}

function randomCounterStart(): number {
  if (poolOffset + 2 > POOL_BYTES) refill();
  const value = (((randomPool[poolOffset] as number) << 8) | (randomPool[poolOffset + 1] as number)) & 0x7ff;
  poolOffset += 2;
  return value;
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex4(value: number): string {
  return (HEX[(value >>> 8) & 0xff] as string) + (HEX[value & 0xff] as string);
}

function hex8(value: number): string {
  return hex4((value >>> 16) & 0xffff) + hex4(value & 0xffff);
}
