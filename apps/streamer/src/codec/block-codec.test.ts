import fc from 'fast-check';
import { type Block, BlockDecoder, blockCount, decodeBlock, encodeBlock } from './block-codec';
import { decodeGorilla, encodeGorilla } from './gorilla-codec';

/** Sample times: ascending and distinct, at µs, ms or s precision, regular or jittered. */
const times = (unit: number) =>
  fc
    .record({
      start: fc.integer({ min: 1_600_000_000, max: 2_000_000_000 }),
      steps: fc.array(fc.integer({ min: 1, max: 100_000 }), { minLength: 0, maxLength: 300 }),
    })
    .map(({ start, steps }) => {
      const out = [start * 1_000_000];
      for (const step of steps) out.push((out.at(-1) as number) + step * unit);
      return out;
    });

const anyTimes = fc.oneof(times(1), times(100), times(1_000), times(100_000), times(1_000_000));

/** Values as exporters send them, and as nothing should: every double, NaN, infinities, -0. */
const value = fc.oneof(
  fc.integer({ min: -1_000_000, max: 1_000_000 }),
  fc.integer({ min: 0, max: 100_000_000 }).map((n) => Number((n / 1_000_000).toFixed(6))),
  fc.double(),
  fc.constantFrom(0, -0, NaN, Infinity, -Infinity, Number.MAX_SAFE_INTEGER, 2 ** 60, 5e-324, 0.1 + 0.2),
);

function blockOf(ts: number[], pick: (i: number) => number): Block {
  return { times: Float64Array.from(ts), values: Float64Array.from(ts, (_, i) => pick(i)) };
}

function expectSame(decoded: Block, block: Block): void {
  expect(Array.from(decoded.times)).toEqual(Array.from(block.times));
  expect(decoded.values).toHaveLength(block.values.length);
  for (let i = 0; i < block.values.length; i++) {
    if (!Object.is(decoded.values[i], block.values[i])) {
      throw new Error(`value ${i}: ${decoded.values[i]} decoded, ${block.values[i]} stored`);
    }
  }
}

/** Lists of blocks (times, and a value for each) to decode one after another. */
const blockLists = (maxLength: number) =>
  fc.array(
    anyTimes.chain((ts) =>
      fc.tuple(fc.constant(ts), fc.array(value, { minLength: ts.length, maxLength: ts.length })),
    ),
    { minLength: 1, maxLength },
  );

describe('block codec', () => {
  it('gives back exactly what it was given: any times, any doubles', () => {
    fc.assert(
      fc.property(
        anyTimes.chain((ts) =>
          fc.tuple(fc.constant(ts), fc.array(value, { minLength: ts.length, maxLength: ts.length })),
        ),
        ([ts, values]) => {
          const block = blockOf(ts, (i) => values[i] as number);
          const data = encodeBlock(block);
          expect(blockCount(data)).toBe(ts.length);
          expectSame(decodeBlock(data), block);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('decodes block after block into the same arrays exactly as one by one', () => {
    const decoder = new BlockDecoder();
    fc.assert(
      fc.property(blockLists(4), (blocks) => {
        for (const [ts, values] of blocks) {
          const block = blockOf(ts, (i) => values[i] as number);
          const n = decoder.decode(encodeBlock(block));
          expectSame({ times: decoder.times.slice(0, n), values: decoder.values.slice(0, n) }, block);
        }
      }),
      { numRuns: 200 },
    );
  });

  it('decodes blocks one after another at growing offsets, views taken before a growth intact', () => {
    fc.assert(
      fc.property(blockLists(6), (blocks) => {
        const decoder = new BlockDecoder(); // starts at 256 samples: several blocks make it grow
        const views: Block[] = [];
        let at = 0;
        for (const [ts, values] of blocks) {
          const n = decoder.decodeAt(encodeBlock(blockOf(ts, (i) => values[i] as number)), at);
          views.push({
            times: decoder.times.subarray(at, at + n),
            values: decoder.values.subarray(at, at + n),
          });
          at += n;
        }
        blocks.forEach(([ts, values], b) =>
          expectSame(
            views[b] as Block,
            blockOf(ts, (i) => values[i] as number),
          ),
        );
      }),
      { numRuns: 200 },
    );
  });

  it('gives back exactly the decimals an exporter prints, in slowly changing series', () => {
    fc.assert(
      fc.property(
        anyTimes,
        fc.integer({ min: 0, max: 6 }),
        fc.integer({ min: -1_000_000, max: 1_000_000 }),
        fc.integer({ min: 0, max: 1000 }),
        (ts, decimals, start, wobble) => {
          const block = blockOf(ts, (i) =>
            Number(((start + Math.round(Math.sin(i) * wobble)) / 10 ** decimals).toFixed(decimals)),
          );
          expectSame(decodeBlock(encodeBlock(block)), block);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('stores a scrape every 30 s with millisecond jitter in about a byte a sample, constants in less', () => {
    const ts = Array.from(
      { length: 120 },
      (_, i) => (1_780_000_000_000 + i * 30_000 + ((i * 7919) % 23)) * 1000,
    );
    const constant = encodeBlock(blockOf(ts, () => 2619));
    const gauge = encodeBlock(blockOf(ts, (i) => Math.round(50 + 45 * Math.sin(i / 2))));
    expect(constant.length / 120).toBeLessThan(1.5);
    expect(gauge.length / 120).toBeLessThan(2.5);
    expect(gauge.length).toBeLessThan(
      encodeGorilla(blockOf(ts, (i) => Math.round(50 + 45 * Math.sin(i / 2)))).length,
    );
  });

  it('refuses an empty block', () => {
    expect(() => encodeBlock({ times: new Float64Array(0), values: new Float64Array(0) })).toThrow(
      RangeError,
    );
  });
});

describe('Gorilla (Prometheus XOR chunk) codec', () => {
  it('gives back millisecond times and every double exactly', () => {
    fc.assert(
      fc.property(
        fc
          .oneof(times(1_000), times(1_000_000))
          .chain((ts) =>
            fc.tuple(fc.constant(ts), fc.array(value, { minLength: ts.length, maxLength: ts.length })),
          ),
        ([ts, values]) => {
          const block = blockOf(ts, (i) => values[i] as number);
          expectSame(decodeGorilla(encodeGorilla(block)), block);
        },
      ),
      { numRuns: 500 },
    );
  });
});
