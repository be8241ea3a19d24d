import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { microsOf } from './sample-time';

/**
 * Hot rows go in by binary COPY with the streamer's own microseconds: they must be the ones
 * Postgres stores from the same text, or a redelivered sample would miss its key by a microsecond.
 */
let db: TestDatabase<Record<string, never>>;

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db.drop();
});

/** What Postgres stores for each text, in µs since the epoch. */
async function stored(texts: string[]): Promise<number[]> {
  const { rows } = await db.pool.query<{ us: string }>(
    `SELECT (extract(epoch FROM t::timestamptz) * 1000000)::bigint::text AS us
     FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n) ORDER BY n`,
    [texts],
  );
  return rows.map((r) => Number(r.us));
}

describe('microsOf', () => {
  it('rounds as Postgres does: half to even, carries into the second, any offset', async () => {
    const texts = [
      '2026-06-01T12:00:00Z',
      '2026-06-01T12:00:00.5Z',
      '2026-06-01T12:00:00.123456Z',
      '2026-06-01T12:00:00.1234565Z', // a tie: to the even 123456
      '2026-06-01T12:00:00.1234575Z', // a tie: to the even 123458
      '2026-06-01T12:00:00.0000005Z',
      '2026-06-01T12:00:00.0000025Z',
      '2026-06-01T12:00:00.000000500Z',
      '2026-06-01T12:00:00.12345650000001Z',
      '2026-06-01T12:00:00.9999995Z', // carries into the next second
      '2026-06-01T12:00:00.9999994999Z',
      '2026-06-01T17:30:00.0000015+05:30',
      '1999-12-31T23:59:59.9999995Z',
      '1969-07-20T20:17:40.0000035Z',
    ];
    expect(texts.map(microsOf)).toEqual(await stored(texts));
  });

  it('agrees with Postgres on thousands of nanosecond times', async () => {
    const texts: string[] = [];
    for (let i = 0; i < 5_000; i++) {
      const nanos = String((i * 7_919_993 + 500) % 1_000_000_000).padStart(9, '0');
      // Trailing zeros dropped, as Go's RFC3339Nano writes them.
      texts.push(`2026-06-01T12:00:0${i % 10}.${nanos.replace(/0+$/, '') || '0'}Z`);
    }
    expect(texts.map(microsOf)).toEqual(await stored(texts));
  });
});
