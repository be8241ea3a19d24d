import type { AggregateOp } from './ast';
import { ExecutionError } from './errors';
import { formatGoFloat, formatValue } from './format';
import { goSortArray, type TieOrder } from './go-sort';
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
import { quantile, quantileOfOrdered } from './quantile';

const MAX_INT64 = 9223372036854774784;
const MIN_INT64 = -9223372036854775808;

export interface Grouping {
  labels: string[];
  without: boolean;
}

/** A series' group: its key, and the labels the group's output has (`by` keeps them, `without` drops them and the name). */
function groupingOf(names: readonly string[], without: boolean) {
  const kept = new Set(names);
  const dropped = new Set([...names, METRIC_NAME]);
  return {
    key: (labels: Labels) => (without ? keyWithoutLabels(labels, dropped) : keyWithLabels(labels, kept)),
    labels: (labels: Labels) => (without ? withoutLabels(labels, dropped) : keepLabels(labels, kept)),
  };
}

/** The aggregations `StepAggregation` evaluates: with a parameter, and not one number per group. */
export const STEP_OPS: ReadonlySet<AggregateOp> = new Set<AggregateOp>([
  'topk',
  'bottomk',
  'quantile',
  'count_values',
]);

/** Where a step's output value goes: an output's number (the same at every step), labels and value. */
export type Emit = (output: number, labels: Labels, value: number) => void;

/**
 * `topk`, `bottomk`, `quantile` and `count_values` over a grid, a step at a time, with
 * Prometheus's arithmetic and order, but without a vector of sample objects per step or a group
 * key made per sample: each input's group is worked out once (for `count_values`, its group but
 * the value label, whose text is made once per output), then each step reads the inputs' arrays.
 * At a step, groups answer in the order of their first input there; `topk` and `bottomk` keep Go's
 * container/heap, so ties resolve as Prometheus resolves them, and answer from the top down.
 */
export class StepAggregation {
  /** Each input's group (`count_values`: its group without the value label). */
  private readonly groupOf: Int32Array;
  /** quantile: each group's labels; count_values: each output's. */
  private readonly labelsOf: Labels[] = [];
  /** The step (+1) at which each group (`count_values`: output) last had an input. */
  private touchedAt: Int32Array;
  /** The groups (outputs) with an input at this step, in the order of their first. */
  private readonly touched: number[] = [];
  /** Each input's value at this step, as the heaps compare them. */
  private readonly current: Float64Array;
  /** topk, bottomk: each group's heap of inputs. */
  private readonly heaps: number[][] = [];
  /** quantile: each group's values at this step, and whether one is -0. */
  private readonly buffers: Float64Array[] = [];
  private readonly filled: Int32Array;
  private readonly negativeZero: Uint8Array;
  /** count_values: each input group's outputs by value (-0 apart from 0), and each output's count. */
  private readonly outputsByValue: Map<number | string, number>[] = [];
  private counts: Float64Array = new Float64Array(16);
  /** count_values: whether outputs differ by value (not when `without` drops the value label). */
  private readonly byValue: boolean = true;
  private readonly outputLabels: (value: number, input: Labels) => Labels;
  private readonly less: (a: number, b: number) => boolean;

  constructor(
    private readonly op: AggregateOp,
    grouping: Grouping,
    private readonly inputs: readonly StepColumn[],
    valueLabel = '',
    /** Whose sort.Sort orders topk's and bottomk's ties (goSortArray). */
    private readonly tieOrder?: TieOrder,
  ) {
    if (!STEP_OPS.has(op)) throw new Error(`StepAggregation cannot evaluate ${op}`);
    let grouper = groupingOf(grouping.labels, grouping.without);
    this.outputLabels = () => [];
    if (op === 'count_values') {
      if (!isValidLabelName(valueLabel))
        throw new ExecutionError(`invalid label name ${JSON.stringify(valueLabel)}`);
      // An output is its input's labels with the value label set, grouped: by the value and the
      // input's group without the value label (unless `without` drops that label too).
      const outputs = groupingOf(
        grouping.without ? grouping.labels : [...grouping.labels, valueLabel],
        grouping.without,
      );
      this.outputLabels = (value, input) => outputs.labels(setLabel(input, valueLabel, formatValue(value)));
      // `without` the value label itself: every value of a group is one output.
      this.byValue =
        !grouping.without || !(grouping.labels.includes(valueLabel) || valueLabel === METRIC_NAME);
      grouper = grouping.without
        ? groupingOf([...grouping.labels, valueLabel], true)
        : groupingOf(
            grouping.labels.filter((l) => l !== valueLabel),
            false,
          );
    }
    const indexOf = new Map<string, number>();
    this.groupOf = new Int32Array(inputs.length);
    const members: number[] = [];
    for (let j = 0; j < inputs.length; j++) {
      const labels = (inputs[j] as StepColumn).labels;
      const key = grouper.key(labels);
      let g = indexOf.get(key);
      if (g === undefined) {
        g = indexOf.size;
        indexOf.set(key, g);
        if (op === 'quantile') this.labelsOf.push(grouper.labels(labels));
        members.push(0);
      }
      this.groupOf[j] = g;
      members[g]++;
    }
    const groups = indexOf.size;
    this.touchedAt = new Int32Array(op === 'count_values' ? 16 : groups);
    this.current = new Float64Array(op === 'topk' || op === 'bottomk' ? inputs.length : 0);
    this.filled = new Int32Array(op === 'quantile' ? groups : 0);
    this.negativeZero = new Uint8Array(op === 'quantile' ? groups : 0);
    for (let g = 0; g < groups; g++) {
      if (op === 'topk' || op === 'bottomk') this.heaps.push([]);
      else if (op === 'quantile') this.buffers.push(new Float64Array(members[g] as number));
      else this.outputsByValue.push(new Map());
    }
    // The heap keeps the input to evict on top: the smallest for topk, the largest for bottomk;
    // NaN counts as the first to evict in both.
    const v = this.current;
    this.less =
      op === 'topk'
        ? (a, b) => Number.isNaN(v[a]) || (v[a] as number) < (v[b] as number)
        : (a, b) => Number.isNaN(v[a]) || (v[a] as number) > (v[b] as number);
  }

  /**
   * The aggregation at step `i`, its parameter's value there being `param` (unused by
   * `count_values`): each output value goes to `emit`, in the order Prometheus answers them.
   */
  step(i: number, param: number, emit: Emit): void {
    this.touched.length = 0;
    const stamp = i + 1;
    switch (this.op) {
      case 'topk':
      case 'bottomk':
        return this.kth(i, stamp, param, emit);
      case 'quantile':
        return this.quantiles(i, stamp, param, emit);
      default:
        return this.countValues(i, stamp, emit);
    }
  }

  private kth(i: number, stamp: number, param: number, emit: Emit): void {
    if (!(param <= MAX_INT64 && param >= MIN_INT64))
      throw new ExecutionError(`Scalar value ${formatGoFloat(param)} overflows int64`);
    const k = Math.trunc(param);
    if (k < 1) return;
    const { inputs, groupOf, touchedAt, touched, heaps, current, less } = this;
    const topk = this.op === 'topk';
    for (let j = 0; j < inputs.length; j++) {
      const s = inputs[j] as StepColumn;
      if (!s.present[i]) continue;
      const value = s.values[i] as number;
      current[j] = value;
      const g = groupOf[j] as number;
      const h = heaps[g] as number[];
      if (touchedAt[g] !== stamp) {
        touchedAt[g] = stamp;
        touched.push(g);
        h.length = 0;
        h.push(j);
        continue;
      }
      const worst = current[h[0] as number] as number;
      if (h.length < k || (topk ? worst < value : worst > value) || Number.isNaN(worst)) {
        if (h.length === k) {
          if (k === 1) {
            h[0] = j;
            continue;
          }
          heapPop(h, less);
        }
        heapPush(h, j, less);
      }
    }
    for (const g of touched) {
      // sort.Sort(sort.Reverse(heap)), as Go sorts it: ties come out in Prometheus's order.
      const h = heaps[g] as number[];
      goSortArray(h, (a, b) => less(b, a), this.tieOrder);
      for (const j of h) emit(j, (inputs[j] as StepColumn).labels, current[j] as number);
    }
  }

  private quantiles(i: number, stamp: number, q: number, emit: Emit): void {
    const { inputs, groupOf, touchedAt, touched, buffers, filled, negativeZero } = this;
    for (let j = 0; j < inputs.length; j++) {
      const s = inputs[j] as StepColumn;
      if (!s.present[i]) continue;
      const value = s.values[i] as number;
      const g = groupOf[j] as number;
      if (touchedAt[g] !== stamp) {
        touchedAt[g] = stamp;
        touched.push(g);
        filled[g] = 0;
        negativeZero[g] = 0;
      }
      (buffers[g] as Float64Array)[filled[g]++] = value;
      if (value === 0 && 1 / value < 0) negativeZero[g] = 1;
    }
    for (const g of touched) {
      const values = (buffers[g] as Float64Array).subarray(0, filled[g]);
      // A numeric sort puts -0 before 0, where Prometheus keeps their order: those few go the long way.
      const value = negativeZero[g] ? quantile(q, Array.from(values)) : sortedQuantile(q, values);
      emit(g, this.labelsOf[g] as Labels, value);
    }
  }

  private countValues(i: number, stamp: number, emit: Emit): void {
    const { inputs, groupOf, touched, outputsByValue } = this;
    for (let j = 0; j < inputs.length; j++) {
      const s = inputs[j] as StepColumn;
      if (!s.present[i]) continue;
      const value = s.values[i] as number;
      const byValue = outputsByValue[groupOf[j] as number] as Map<number | string, number>;
      // A Map holds 0 and -0 as one key; their labels differ ("0", "-0").
      const key = !this.byValue ? 0 : value === 0 && 1 / value < 0 ? '-0' : value;
      let o = byValue.get(key);
      if (o === undefined) {
        o = this.labelsOf.length;
        byValue.set(key, o);
        this.labelsOf.push(this.outputLabels(value, s.labels));
        if (o >= this.counts.length) {
          this.counts = grown(this.counts);
          this.touchedAt = grown(this.touchedAt);
        }
      }
      if (this.touchedAt[o] !== stamp) {
        this.touchedAt[o] = stamp;
        touched.push(o);
        this.counts[o] = 1;
      } else this.counts[o]++;
    }
    for (const o of touched) emit(o, this.labelsOf[o] as Labels, this.counts[o] as number);
  }
}

function grown<T extends Float64Array | Int32Array>(array: T): T {
  const bigger = new (array.constructor as new (n: number) => T)(array.length * 2);
  bigger.set(array);
  return bigger;
}

/** quantile() of values without -0, sorting them in place as numbers (NaN last, counted as first). */
function sortedQuantile(q: number, values: Float64Array): number {
  const n = values.length;
  let nans = -1;
  return quantileOfOrdered(q, n, (k) => {
    if (nans < 0) {
      values.sort();
      nans = 0;
      while (nans < n && Number.isNaN(values[n - 1 - nans])) nans++;
    }
    return k < nans ? NaN : (values[k - nans] as number);
  });
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

type Less = (a: number, b: number) => boolean;

function heapUp(h: number[], j: number, less: Less): void {
  for (;;) {
    const i = Math.trunc((j - 1) / 2);
    if (i === j || !less(h[j] as number, h[i] as number)) break;
    [h[i], h[j]] = [h[j] as number, h[i] as number];
    j = i;
  }
}

function heapDown(h: number[], i0: number, n: number, less: Less): void {
  let i = i0;
  for (;;) {
    const j1 = 2 * i + 1;
    if (j1 >= n || j1 < 0) break;
    let j = j1;
    const j2 = j1 + 1;
    if (j2 < n && less(h[j2] as number, h[j1] as number)) j = j2;
    if (!less(h[j] as number, h[i] as number)) break;
    [h[i], h[j]] = [h[j] as number, h[i] as number];
    i = j;
  }
}

function heapPush(h: number[], j: number, less: Less): void {
  h.push(j);
  heapUp(h, h.length - 1, less);
}

function heapPop(h: number[], less: Less): void {
  const n = h.length - 1;
  [h[0], h[n]] = [h[n] as number, h[0] as number];
  heapDown(h, 0, n, less);
  h.pop();
}
