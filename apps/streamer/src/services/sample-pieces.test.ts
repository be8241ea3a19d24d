import fc from 'fast-check';
import { mergePieces, newestAtEach, type Piece } from './sample-pieces';

/** The newest sample at or before `ref` (ms), as an instant selector reads it: its index, or -1. */
function newestAt(times: Float64Array, ref: number): number {
  let found = -1;
  for (let i = 0; i < times.length; i++) if ((times[i] as number) <= ref) found = i;
  return found;
}

const pieceOf = (us: number[]): Piece => {
  const times = Float64Array.from([...new Set(us)].sort((a, b) => a - b));
  return { times, values: Float64Array.from(times, (t, i) => t / 7 + i) };
};

describe('newestAtEach', () => {
  it('keeps, for every evaluation time, the sample an instant selector reads there', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3_000_000 }), { maxLength: 200 }),
        fc.integer({ min: 0, max: 3_200 }),
        fc.integer({ min: 0, max: 400 }),
        (us, lastMs, stepMs) => {
          const piece = pieceOf(us);
          const full = mergePieces([piece], -1, 10_000);
          const thin = mergePieces([newestAtEach(piece, { lastMs, stepMs })], -1, 10_000);
          const refs = stepMs > 0 ? Array.from({ length: 40 }, (_, k) => lastMs - k * stepMs) : [lastMs];
          for (const ref of refs) {
            const a = full ? newestAt(full.timestamps, ref) : -1;
            const b = thin ? newestAt(thin.timestamps, ref) : -1;
            expect(b < 0 ? null : [thin?.timestamps[b], thin?.values[b]]).toEqual(
              a < 0 ? null : [full?.timestamps[a], full?.values[a]],
            );
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('thins an hour of 15-second samples for hourly steps, and leaves them be for 15-second steps', () => {
    const hour = pieceOf(Array.from({ length: 240 }, (_, i) => 3_600_000_000 + i * 15_000_000));
    const lastMs = 7_200_000;
    expect(newestAtEach(hour, { lastMs, stepMs: 3_600_000 }).times).toHaveLength(2); // at 1 h and 2 h
    expect(newestAtEach(hour, { lastMs, stepMs: 60_000 }).times).toHaveLength(61);
    expect(newestAtEach(hour, { lastMs, stepMs: 15_000 })).toBe(hour);
    expect(newestAtEach(hour, { lastMs, stepMs: 10_000 })).toBe(hour);
  });
});

describe('mergePieces', () => {
  it('keeps a sample over a stale marker in the same millisecond, and the marker where none is', () => {
    const merged = mergePieces([pieceOf([1_000, 2_000])], 0, 10, { staleUs: [2_400, 3_000] });
    expect(Array.from(merged?.timestamps ?? [])).toEqual([1, 2, 3]);
    const words = new Uint32Array((merged?.values as Float64Array).buffer);
    expect([words[2], words[3]]).not.toEqual([2, 0x7ff00000]);
    expect([words[4], words[5]]).toEqual([2, 0x7ff00000]);
  });
});
