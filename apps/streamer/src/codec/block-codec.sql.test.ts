import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import fc from 'fast-check';
import { type Block, encodeBlock } from './block-codec';

/**
 * Postgres decodes blocks too (telemetry_decode, for the telemetry view, dashboards and the down
 * migration): for any block the streamer writes, it must give back the same times and the same
 * bits of every value.
 */
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

const value = fc.oneof(
  fc.integer({ min: -100_000, max: 100_000 }),
  fc.integer({ min: 0, max: 10_000_000 }).map((n) => Number((n / 1_000).toFixed(3))),
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0, 5e-324, 2 ** 53, -(2 ** 53)),
);
const block = fc
  .record({
    start: fc.integer({ min: 1_000_000_000, max: 2_000_000_000 }),
    unit: fc.constantFrom(1, 10, 1_000, 100_000, 1_000_000),
    steps: fc.array(fc.integer({ min: 1, max: 5_000_000 }), { maxLength: 120 }),
  })
  .chain(({ start, unit, steps }) => {
    const times = [start * 1_000_000];
    for (const step of steps) times.push((times.at(-1) as number) + step * unit);
    return fc
      .oneof(
        fc.array(value, { minLength: times.length, maxLength: times.length }),
        fc.constant(times.map((_, i) => Math.round(1000 + 50 * Math.sin(i)))),
      )
      .map((values): Block => ({ times: Float64Array.from(times), values: Float64Array.from(values) }));
  });

const bits = (v: number) => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  return Buffer.from(view.buffer).toString('hex');
};

describe('telemetry_decode (SQL)', () => {
  it('is planned without JIT, whatever the server says: compiling it costs far more than it does', async () => {
    const { rows } = await database.pool.query<{ config: string[] | null }>(
      `SELECT proconfig AS config FROM pg_proc WHERE proname = 'telemetry_decode'`,
    );
    expect(rows).toEqual([{ config: ['jit=off'] }]);
    // Where every query is compiled (on a server with JIT), the decode still answers.
    const client = await database.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL jit_above_cost = 0');
      const decoded = await client.query('SELECT count(*)::int AS n FROM telemetry_decode($1)', [
        encodeBlock({
          times: Float64Array.of(1_000_000, 2_000_000, 3_000_000),
          values: Float64Array.of(1, 2, 3),
        }),
      ]);
      expect(decoded.rows).toEqual([{ n: 3 }]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  });

  it('decodes every block as the streamer does', async () => {
    await fc.assert(
      fc.asyncProperty(block, async (b) => {
        const { rows } = await database.pool.query<{ us: string; bits: Buffer; value: number }>(
          `SELECT (extract(epoch FROM ts) * 1000000)::bigint AS us, float8send(value) AS bits, value
           FROM telemetry_decode($1)`,
          [encodeBlock(b)],
        );
        expect(rows.map((r) => Number(r.us))).toEqual(Array.from(b.times));
        // NaN has many bit patterns; every other value must match bit for bit.
        expect(rows.map((r) => (Number.isNaN(r.value) ? 'NaN' : r.bits.toString('hex')))).toEqual(
          Array.from(b.values, (v) => (Number.isNaN(v) ? 'NaN' : bits(v))),
        );
      }),
      { numRuns: 300 },
    );
  });
});
