// Go's sort.Sort, as Prometheus calls it for sort(), sort_desc(), topk() and bottomk(): not
// stable, so which of two equal values comes first is whatever its algorithm leaves. To answer in
// Prometheus's order when values tie, this is the same algorithm step for step: pattern-defeating
// quicksort (Go 1.19 and later), insertion sort up to 12 elements, heapsort past too many bad
// pivots, and its deterministic pattern breaker, whose xorshift changed in Go 1.24 (golang/go#70144):
// Prometheus built with Go 1.19-1.23 breaks patterns with shifts 13, 17, 5, later ones with 13, 7, 17.

/** Which Go release's sort.Sort to follow: the pattern breaker of Go 1.19-1.23, or of 1.24 and later. */
export type TieOrder = 'go1.19' | 'go1.24';

/** Go 1.24 and later: what Prometheus releases since 2025 are built with. */
export const DEFAULT_TIE_ORDER: TieOrder = 'go1.24';

/** What is sorted, by index: Go's sort.Interface without Len. */
interface GoSortable {
  /** Whether the element at i sorts before the one at j. */
  less(i: number, j: number): boolean;
  swap(i: number, j: number): void;
}

const MAX_INSERTION = 12;
const SHORTEST_NINTHER = 50;
const MAX_SWAPS = 4 * 3;
const PARTIAL_MAX_STEPS = 5;
const PARTIAL_SHORTEST_SHIFTING = 50;

enum Hint {
  Unknown,
  Increasing,
  Decreasing,
}

/** Go's bits.Len: the bits needed to write n (n >= 0, below 2^32). */
function bitLength(n: number): number {
  return 32 - Math.clz32(n);
}

/** Sorts elements 0..n-1 as Go's sort.Sort(data) does, in the release `order` names. */
function goSort(n: number, data: GoSortable, order: TieOrder = DEFAULT_TIE_ORDER): void {
  if (n <= 1) return;
  pdqsort(data, 0, n, bitLength(n), SHIFTS[order]);
}

/** The xorshift's three shifts (left, right, left) in each Go release's pattern breaker. */
const SHIFTS: Record<TieOrder, readonly [bigint, bigint, bigint]> = {
  'go1.19': [13n, 17n, 5n],
  'go1.24': [13n, 7n, 17n],
};

type Shifts = (typeof SHIFTS)[TieOrder];

/** goSort over an array's elements, in place: `less(x, y)` says x sorts before y. */
export function goSortArray<T>(items: T[], less: (x: T, y: T) => boolean, order?: TieOrder): void {
  goSort(
    items.length,
    {
      less: (i, j) => less(items[i] as T, items[j] as T),
      swap: (i, j) => {
        [items[i], items[j]] = [items[j] as T, items[i] as T];
      },
    },
    order,
  );
}

function insertionSort(data: GoSortable, a: number, b: number): void {
  for (let i = a + 1; i < b; i++) {
    for (let j = i; j > a && data.less(j, j - 1); j--) data.swap(j, j - 1);
  }
}

function siftDown(data: GoSortable, lo: number, hi: number, first: number): void {
  let root = lo;
  for (;;) {
    let child = 2 * root + 1;
    if (child >= hi) return;
    if (child + 1 < hi && data.less(first + child, first + child + 1)) child++;
    if (!data.less(first + root, first + child)) return;
    data.swap(first + root, first + child);
    root = child;
  }
}

function heapSort(data: GoSortable, a: number, b: number): void {
  const hi = b - a;
  for (let i = Math.trunc((hi - 1) / 2); i >= 0; i--) siftDown(data, i, hi, a);
  for (let i = hi - 1; i >= 0; i--) {
    data.swap(a, a + i);
    siftDown(data, 0, i, a);
  }
}

function pdqsort(data: GoSortable, a: number, b: number, limit: number, shifts: Shifts): void {
  let wasBalanced = true;
  let wasPartitioned = true;
  for (;;) {
    const length = b - a;
    if (length <= MAX_INSERTION) {
      insertionSort(data, a, b);
      return;
    }
    if (limit === 0) {
      heapSort(data, a, b);
      return;
    }
    if (!wasBalanced) {
      breakPatterns(data, a, b, shifts);
      limit--;
    }
    let [pivot, hint] = choosePivot(data, a, b);
    if (hint === Hint.Decreasing) {
      reverseRange(data, a, b);
      pivot = b - 1 - (pivot - a);
      hint = Hint.Increasing;
    }
    if (wasBalanced && wasPartitioned && hint === Hint.Increasing && partialInsertionSort(data, a, b)) return;
    // Nothing in a..b is below the element before a: many equal to it, most likely.
    if (a > 0 && !data.less(a - 1, pivot)) {
      a = partitionEqual(data, a, b, pivot);
      continue;
    }
    const [mid, alreadyPartitioned] = partition(data, a, b, pivot);
    wasPartitioned = alreadyPartitioned;
    const left = mid - a;
    const right = b - mid;
    const balanceThreshold = Math.trunc(length / 8);
    if (left < right) {
      wasBalanced = left >= balanceThreshold;
      pdqsort(data, a, mid, limit, shifts);
      a = mid + 1;
    } else {
      wasBalanced = right >= balanceThreshold;
      pdqsort(data, mid + 1, b, limit, shifts);
      b = mid;
    }
  }
}

/** One quicksort partition around the pivot: its new place, and whether nothing had to move. */
function partition(data: GoSortable, a: number, b: number, pivot: number): [number, boolean] {
  data.swap(a, pivot);
  let i = a + 1;
  let j = b - 1;
  while (i <= j && data.less(i, a)) i++;
  while (i <= j && !data.less(j, a)) j--;
  if (i > j) {
    data.swap(j, a);
    return [j, true];
  }
  data.swap(i, j);
  i++;
  j--;
  for (;;) {
    while (i <= j && data.less(i, a)) i++;
    while (i <= j && !data.less(j, a)) j--;
    if (i > j) break;
    data.swap(i, j);
    i++;
    j--;
  }
  data.swap(j, a);
  return [j, false];
}

/** Elements equal to the pivot first, then those greater (none is smaller); returns where the greater begin. */
function partitionEqual(data: GoSortable, a: number, b: number, pivot: number): number {
  data.swap(a, pivot);
  let i = a + 1;
  let j = b - 1;
  for (;;) {
    while (i <= j && !data.less(a, i)) i++;
    while (i <= j && data.less(a, j)) j--;
    if (i > j) break;
    data.swap(i, j);
    i++;
    j--;
  }
  return i;
}

/** Mends a few out-of-order neighbours; whether a..b ends up sorted. */
function partialInsertionSort(data: GoSortable, a: number, b: number): boolean {
  let i = a + 1;
  for (let step = 0; step < PARTIAL_MAX_STEPS; step++) {
    while (i < b && !data.less(i, i - 1)) i++;
    if (i === b) return true;
    if (b - a < PARTIAL_SHORTEST_SHIFTING) return false;
    data.swap(i, i - 1);
    // The smaller one to the left: down to index 1, not to a, as Go's loop runs.
    if (i - a >= 2) {
      for (let j = i - 1; j >= 1; j--) {
        if (!data.less(j, j - 1)) break;
        data.swap(j, j - 1);
      }
    }
    // The greater one to the right.
    if (b - i >= 2) {
      for (let j = i + 1; j < b; j++) {
        if (!data.less(j, j - 1)) break;
        data.swap(j, j - 1);
      }
    }
  }
  return false;
}

const MASK_64 = (1n << 64n) - 1n;

/** Swaps three elements near the middle with others picked by an xorshift seeded with the length. */
function breakPatterns(data: GoSortable, a: number, b: number, [left, right, again]: Shifts): void {
  const length = b - a;
  if (length < 8) return;
  let random = BigInt(length);
  const modulus = BigInt(2 ** bitLength(length));
  const middle = a + Math.trunc(length / 4) * 2;
  for (let idx = middle - 1; idx <= middle + 1; idx++) {
    random ^= (random << left) & MASK_64;
    random ^= random >> right;
    random ^= (random << again) & MASK_64;
    let other = Number(random & (modulus - 1n));
    if (other >= length) other -= length;
    data.swap(idx, a + other);
  }
}

/** A pivot for a..b (median of three, or Tukey's ninther from 50 up), and how sorted a..b looks. */
function choosePivot(data: GoSortable, a: number, b: number): [number, Hint] {
  const l = b - a;
  const swaps = { n: 0 };
  let i = a + Math.trunc(l / 4);
  let j = a + Math.trunc(l / 4) * 2;
  let k = a + Math.trunc(l / 4) * 3;
  if (l >= 8) {
    if (l >= SHORTEST_NINTHER) {
      i = median(data, i - 1, i, i + 1, swaps);
      j = median(data, j - 1, j, j + 1, swaps);
      k = median(data, k - 1, k, k + 1, swaps);
    }
    j = median(data, i, j, k, swaps);
  }
  if (swaps.n === 0) return [j, Hint.Increasing];
  if (swaps.n === MAX_SWAPS) return [j, Hint.Decreasing];
  return [j, Hint.Unknown];
}

/** x and y in order (data[x] <= data[y]), counting a swap when they came the other way. */
function order2(data: GoSortable, x: number, y: number, swaps: { n: number }): [number, number] {
  if (data.less(y, x)) {
    swaps.n++;
    return [y, x];
  }
  return [x, y];
}

/** Which of a, b, c holds the median of the three. */
function median(data: GoSortable, a: number, b: number, c: number, swaps: { n: number }): number {
  [a, b] = order2(data, a, b, swaps);
  [b, c] = order2(data, b, c, swaps);
  [a, b] = order2(data, a, b, swaps);
  return b;
}

function reverseRange(data: GoSortable, a: number, b: number): void {
  for (let i = a, j = b - 1; i < j; i++, j--) data.swap(i, j);
}
