import type { AggregateOp } from './ast';
import { ExecutionError } from './errors';
import { formatValue } from './format';
import {
  isValidLabelName,
  keepLabels,
  keyWithLabels,
  keyWithoutLabels,
  type Labels,
  METRIC_NAME,
  setLabel,
  withoutLabels,
} from './labels';
import type { VSample } from './functions';
import { quantile } from './quantile';

interface Group {
  labels: Labels;
  count: number;
  heap: VSample[];
  values: number[];
}

const MAX_INT64 = 9223372036854774784;
const MIN_INT64 = -9223372036854775808;

export interface Grouping {
  labels: string[];
  without: boolean;
}

/** An input series' group key and group labels, kept across the steps of one aggregation (its labels do not change). */
export type GroupCache = WeakMap<Labels, { key: string; labels: Labels }>;

/** A series' group: its key, and the labels the group's output has (`by` keeps them, `without` drops them and the name). */
function groupingOf(names: readonly string[], without: boolean) {
  const kept = new Set(names);
  const dropped = new Set([...names, METRIC_NAME]);
  return {
    key: (labels: Labels) => (without ? keyWithoutLabels(labels, dropped) : keyWithLabels(labels, kept)),
    labels: (labels: Labels) => (without ? withoutLabels(labels, dropped) : keepLabels(labels, kept)),
  };
}

/**
 * One step of an aggregation with a parameter (`topk`, `bottomk`, `quantile`, `count_values`),
 * with Prometheus's arithmetic: heaps for `topk`/`bottomk` (Go's container/heap, so ties resolve
 * as Prometheus resolves them). Groups come out in the order their first sample came in. The
 * others (COLUMN_OPS) are evaluated every step at once by `aggregateColumns`.
 */

export function aggregate(
  op: AggregateOp,
  grouping: Grouping,
  param: number | string | undefined,
  vec: VSample[],
  cache?: GroupCache,
): VSample[] {
  if (COLUMN_OPS.has(op)) throw new Error(`${op} is evaluated by aggregateColumns`);
  let k = 0;
  if (op === 'topk' || op === 'bottomk') {
    const f = param as number;
    if (!(f <= MAX_INT64 && f >= MIN_INT64))
      throw new ExecutionError(`Scalar value ${formatValue(f)} overflows int64`);
    k = Math.trunc(f);
    if (k < 1) return [];
  }
  let valueLabel = '';
  let groupingLabels = grouping.labels;
  if (op === 'count_values') {
    valueLabel = param as string;
    if (!isValidLabelName(valueLabel))
      throw new ExecutionError(`invalid label name ${JSON.stringify(valueLabel)}`);
    if (!grouping.without) groupingLabels = [...groupingLabels, valueLabel];
  }
  const grouper = groupingOf(groupingLabels, grouping.without);
  const groupOf = (labels: Labels) => {
    let found = op === 'count_values' ? undefined : cache?.get(labels);
    if (!found) {
      found = { key: grouper.key(labels), labels: grouper.labels(labels) };
      if (op !== 'count_values') cache?.set(labels, found);
    }
    return found;
  };

  const groups = new Map<string, Group>();
  const ordered: Group[] = [];
  for (const s of vec) {
    let labels = s.labels;
    if (op === 'count_values') labels = setLabel(labels, valueLabel, formatValue(s.value));
    const { key, labels: groupLabels } = groupOf(labels);
    const found = groups.get(key);
    if (!found) {
      const g: Group = { labels: groupLabels, count: 1, heap: [], values: [] };
      if (op === 'topk' || op === 'bottomk') g.heap = [s];
      else if (op === 'quantile') g.values = [s.value];
      groups.set(key, g);
      ordered.push(g);
      continue;
    }
    switch (op) {
      case 'count_values':
        found.count++;
        break;
      case 'topk':
      case 'bottomk': {
        const less = op === 'topk' ? topkLess : bottomkLess;
        const h = found.heap;
        if (h.length < k || better(op, s.value, h[0].value) || Number.isNaN(h[0].value)) {
          if (h.length === k) {
            if (k === 1) {
              h[0] = s;
              break;
            }
            heapPop(h, less);
          }
          heapPush(h, s, less);
        }
        break;
      }
      case 'quantile':
        found.values.push(s.value);
        break;
    }
  }

  const out: VSample[] = [];
  for (const g of ordered) {
    switch (op) {
      case 'count_values':
        out.push({ labels: g.labels, value: g.count });
        break;
      case 'topk':
      case 'bottomk': {
        const less = op === 'topk' ? topkLess : bottomkLess;
        // sort.Sort(sort.Reverse(heap)): insertion sort for small heaps, as Go does.
        const h = g.heap;
        if (h.length > 1) {
          if (h.length <= 12) {
            for (let i = 1; i < h.length; i++) {
              for (let j = i; j > 0 && less(h[j - 1], h[j]); j--) [h[j], h[j - 1]] = [h[j - 1], h[j]];
            }
          } else {
            h.sort((a, b) => (less(b, a) ? -1 : less(a, b) ? 1 : 0));
          }
        }
        for (const s of h) out.push({ labels: s.labels, value: s.value });
        break;
      }
      default: // quantile
        out.push({ labels: g.labels, value: quantile(param as number, g.values) });
    }
  }
  return out;
}

/** The aggregations `aggregateColumns` evaluates: no parameter, one number per group and step. */
export const COLUMN_OPS: ReadonlySet<AggregateOp> = new Set<AggregateOp>([
  'sum',
  'avg',
  'count',
  'min',
  'max',
  'group',
  'stddev',
  'stdvar',
]);

/** An input or output series as values at every step of a grid (`present`: whether it has one). */
export interface StepColumn {
  labels: Labels;
  values: Float64Array;
  present: Uint8Array;
}

/**
 * `aggregate` for every step of a grid at once, for COLUMN_OPS: each input series' group is worked
 * out once, then each input is walked from its first step to its last (its arrays read in order,
 * not one element of each of thousands of arrays per step) into its group's numbers for every
 * step. Each group's numbers at a step still take the inputs in input order, with exactly the
 * arithmetic of `aggregate`; groups come out in the order `aggregate`, step after step, first
 * returns them. `check()` runs between inputs (deadlines); the points made are returned with them.
 */
export function aggregateColumns(
  op: AggregateOp,
  grouping: Grouping,
  inputs: readonly StepColumn[],
  steps: number,
  check: () => void,
): (StepColumn & { points: number })[] {
  if (!COLUMN_OPS.has(op)) throw new Error(`aggregateColumns cannot evaluate ${op}`);
  const grouper = groupingOf(grouping.labels, grouping.without);
  const indexOf = new Map<string, number>();
  const groups: {
    labels: Labels;
    /** The value at each step: the running sum, max, min..., the mean for avg and stddev. */
    values: Float64Array;
    present: Uint8Array;
    /** Samples taken at each step (avg, count, stddev, stdvar). */
    count: Float64Array | null;
    /** Welford's running sum of squares (stddev, stdvar). */
    squares: Float64Array | null;
    firstStep: number;
    firstInput: number;
  }[] = [];
  const counted = op === 'avg' || op === 'count' || op === 'stddev' || op === 'stdvar';
  const welford = op === 'stddev' || op === 'stdvar';
  for (let j = 0; j < inputs.length; j++) {
    check();
    const s = inputs[j] as StepColumn;
    const key = grouper.key(s.labels);
    let g = indexOf.get(key);
    if (g === undefined) {
      g = groups.length;
      indexOf.set(key, g);
      groups.push({
        labels: grouper.labels(s.labels),
        values: new Float64Array(steps),
        present: new Uint8Array(steps),
        count: counted ? new Float64Array(steps) : null,
        squares: welford ? new Float64Array(steps) : null,
        firstStep: steps,
        firstInput: 0,
      });
    }
    const group = groups[g] as (typeof groups)[number];
    const { values, present, count, squares } = group;
    const sv = s.values;
    const sp = s.present;
    for (let i = 0; i < steps; i++) {
      if (!sp[i]) continue;
      const v = sv[i] as number;
      if (!present[i]) {
        present[i] = 1;
        if (i < group.firstStep) {
          group.firstStep = i;
          group.firstInput = j;
        }
        values[i] = op === 'group' ? 1 : v; // the mean too, for avg, stddev and stdvar
        if (count) count[i] = 1;
        if (squares) squares[i] = 0;
        continue;
      }
      switch (op) {
        case 'sum':
          values[i] = (values[i] as number) + v;
          break;
        case 'avg': {
          const c = ++(count as Float64Array)[i];
          const m = values[i] as number;
          if (!Number.isFinite(m) && !Number.isNaN(m)) {
            if (!Number.isFinite(v) && !Number.isNaN(v) && m > 0 === v > 0) break;
            if (Number.isFinite(v)) break;
          }
          values[i] = m + (v / c - m / c);
          break;
        }
        case 'max':
          if ((values[i] as number) < v || Number.isNaN(values[i])) values[i] = v;
          break;
        case 'min':
          if ((values[i] as number) > v || Number.isNaN(values[i])) values[i] = v;
          break;
        case 'count':
          (count as Float64Array)[i]++;
          break;
        case 'stddev':
        case 'stdvar': {
          const c = ++(count as Float64Array)[i];
          const delta = v - (values[i] as number);
          values[i] = (values[i] as number) + delta / c;
          (squares as Float64Array)[i] = (squares as Float64Array)[i] + delta * (v - (values[i] as number));
          break;
        }
        default: // group
          break;
      }
    }
  }
  const out: (StepColumn & { points: number })[] = [];
  // In the order the per-step path first answers them: by first step, then by first input there.
  const ordered = groups
    .filter((g) => g.firstStep < steps)
    .sort((a, b) => a.firstStep - b.firstStep || a.firstInput - b.firstInput);
  for (const g of ordered) {
    const { values, present, count, squares } = g;
    let points = 0;
    for (let i = 0; i < steps; i++) {
      if (!present[i]) continue;
      points++;
      if (op === 'count') values[i] = count?.[i] as number;
      else if (op === 'stdvar') values[i] = (squares?.[i] as number) / (count?.[i] as number);
      else if (op === 'stddev') values[i] = Math.sqrt((squares?.[i] as number) / (count?.[i] as number));
    }
    out.push({ labels: g.labels, values, present, points });
  }
  return out;
}

function better(op: AggregateOp, candidate: number, worst: number): boolean {
  return op === 'topk' ? worst < candidate : worst > candidate;
}

type Less = (a: VSample, b: VSample) => boolean;

// The heap keeps the element to evict on top: the smallest for topk, the largest for bottomk;
// NaN counts as the first to evict in both.
const topkLess: Less = (a, b) => Number.isNaN(a.value) || a.value < b.value;
const bottomkLess: Less = (a, b) => Number.isNaN(a.value) || a.value > b.value;

function heapUp(h: VSample[], j: number, less: Less): void {
  for (;;) {
    const i = Math.trunc((j - 1) / 2);
    if (i === j || !less(h[j], h[i])) break;
    [h[i], h[j]] = [h[j], h[i]];
    j = i;
  }
}

function heapDown(h: VSample[], i0: number, n: number, less: Less): void {
  let i = i0;
  for (;;) {
    const j1 = 2 * i + 1;
    if (j1 >= n || j1 < 0) break;
    let j = j1;
    const j2 = j1 + 1;
    if (j2 < n && less(h[j2], h[j1])) j = j2;
    if (!less(h[j], h[i])) break;
    [h[i], h[j]] = [h[j], h[i]];
    i = j;
  }
}

function heapPush(h: VSample[], s: VSample, less: Less): void {
  h.push(s);
  heapUp(h, h.length - 1, less);
}

function heapPop(h: VSample[], less: Less): void {
  const n = h.length - 1;
  [h[0], h[n]] = [h[n], h[0]];
  heapDown(h, 0, n, less);
  h.pop();
}
