import fc from 'fast-check';
import { goSortArray, type TieOrder } from './go-sort';

/** Sorts values tagged by their first place, as goSortArray leaves them: [value, first place][]. */
function sorted(values: readonly number[], order?: TieOrder): [number, number][] {
  const out = values.map((v, i) => [v, i] as [number, number]);
  goSortArray(out, (x, y) => x[0] < y[0], order);
  return out;
}

// Few distinct values, so that ties are common, and lengths either side of 12 and 50 (where Go
// changes pivot method) up to where the pattern breaker and heapsort have work to do.
const values = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 400, size: 'max' });
const orders = fc.constantFrom<TieOrder>('go1.19', 'go1.24');

describe('goSortArray', () => {
  it('sorts every element into place, each once', () => {
    fc.assert(
      fc.property(values, orders, (input, order) => {
        const out = sorted(input, order);
        expect(out.map(([v]) => v)).toEqual([...input].sort((a, b) => a - b));
        expect(new Set(out.map(([, i]) => i)).size).toBe(input.length);
      }),
    );
  });

  it('is an insertion sort up to 12 elements: equal values keep their order', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 }), { maxLength: 12 }), orders, (input, order) => {
        const stable = input.map((v, i) => [v, i] as [number, number]).sort((a, b) => a[0] - b[0]);
        expect(sorted(input, order)).toEqual(stable);
      }),
    );
  });

  it('is not stable past 12 elements, as Go is not', () => {
    // 13 equal values but one: the quicksort's partition moves equal values past each other.
    const input = [1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1];
    const out = sorted(input);
    expect(out.map(([v]) => v)).toEqual([0, ...Array(12).fill(1)]);
    expect(out.slice(1).map(([, i]) => i)).not.toEqual([0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12]);
  });

  it('breaks patterns with the xorshift of the Go release asked for, so ties can differ', () => {
    // Unbalanced partitions call the pattern breaker, whose generator changed in Go 1.24.
    const long = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 51, maxLength: 400, size: 'max' });
    const differ = fc.sample(long, 200).some((input) => {
      const a = sorted(input, 'go1.19').map(([, i]) => i);
      const b = sorted(input, 'go1.24').map(([, i]) => i);
      return a.join() !== b.join();
    });
    expect(differ).toBe(true);
  });

  it('sorts a long run of equal values, and values already in order or reversed, in place', () => {
    for (const input of [
      Array(1000).fill(7),
      Array.from({ length: 1000 }, (_, i) => i),
      Array.from({ length: 1000 }, (_, i) => 1000 - i),
      Array.from({ length: 1000 }, (_, i) => (i * 7919) % 13),
    ]) {
      expect(sorted(input).map(([v]) => v)).toEqual([...input].sort((a, b) => a - b));
    }
  });
});
