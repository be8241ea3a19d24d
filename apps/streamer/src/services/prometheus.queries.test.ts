import { onePerTime } from './prometheus.queries';

/** Hot samples reach the engine in time order, each time once, values as their exact bits. */
describe('onePerTime', () => {
  it('puts samples read out of order in time order', () => {
    const out = onePerTime(Float64Array.from([3, 1, 2]), Float64Array.from([30, 10, 20]));
    expect([...out.times]).toEqual([1, 2, 3]);
    expect([...out.values]).toEqual([10, 20, 30]);
  });

  it('keeps one value of a time read twice, the greatest, NaN above all, moved as its bits', () => {
    const times = Float64Array.from([1, 2, 2, 2, 3, 4, 4, 5, 5]);
    const values = Float64Array.from([10, 20, 22, 21, 0, 41, 40, 50, 0]);
    const words = new Uint32Array(values.buffer);
    for (const i of [4, 8]) {
      words[2 * i] = 0x00000002; // a staleness marker's exact bits
      words[2 * i + 1] = 0x7ff00000;
    }
    const out = onePerTime(times, values);
    expect([...out.times]).toEqual([1, 2, 3, 4, 5]);
    expect([...out.values].map((v) => (Number.isNaN(v) ? 'NaN' : v))).toEqual([10, 22, 'NaN', 41, 'NaN']);
    const bits = new Uint32Array(out.values.buffer, out.values.byteOffset, 10);
    expect([bits[4], bits[5], bits[8], bits[9]]).toEqual([0x00000002, 0x7ff00000, 0x00000002, 0x7ff00000]);
  });

  it('returns the same arrays when they are in order with no time twice', () => {
    const times = Float64Array.from([1, 2, 3]);
    const values = Float64Array.from([1, 2, 3]);
    const out = onePerTime(times, values);
    expect(out.times).toBe(times);
    expect(out.values).toBe(values);
  });
});
