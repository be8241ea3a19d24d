import fc from 'fast-check';
import { inTimeOrder } from './prometheus.queries';

/** A NaN with a payload (Prometheus's staleness marker), to see that bits survive the move. */
const STALE = new Float64Array(new BigUint64Array([0x7ff0000000000002n]).buffer)[0] as number;

describe('hot samples put in time order as read', () => {
  it('moves each value with its time, bits and all', () => {
    const times = Float64Array.of(30, 10, 20, 40);
    const values = Float64Array.of(3, STALE, 2, 4);
    inTimeOrder(times, values);
    expect([...times]).toEqual([10, 20, 30, 40]);
    const bits = new BigUint64Array(values.buffer);
    expect(bits[0]).toBe(0x7ff0000000000002n);
    expect([...values.subarray(1)]).toEqual([2, 3, 4]);
  });

  it('leaves samples already in order as they are', () => {
    const times = Float64Array.of(1, 2, 2, 5);
    const values = Float64Array.of(1, 2, 3, 4);
    inTimeOrder(times, values);
    expect([...times]).toEqual([1, 2, 2, 5]);
    expect([...values]).toEqual([1, 2, 3, 4]);
  });

  it('orders any mix of runs as a stable sort does, each value with its time', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 300 }), (raw) => {
        const times = Float64Array.from(raw);
        // Each value names where it came from, so a value that moves without its time shows.
        const values = Float64Array.from(raw, (_, i) => i);
        const want = raw.map((t, i) => [t, i] as const).sort((a, b) => a[0] - b[0]);
        inTimeOrder(times, values);
        expect([...times]).toEqual(want.map(([t]) => t));
        expect([...values]).toEqual(want.map(([, i]) => i));
      }),
      { numRuns: 1000 },
    );
  });
});
