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
  value: number;
  mean: number;
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

/**
 * One step of an aggregation, with Prometheus's arithmetic: a running sum, an incremental mean for
 * `avg`, Welford for `stddev`/`stdvar`, NaN replaced by any value in `min`/`max`, heaps for
 * `topk`/`bottomk` (Go's container/heap, so ties resolve as Prometheus resolves them).
 * Groups come out in the order their first sample came in.
 */
/** An input series' group key and group labels, kept across the steps of one aggregation (its labels do not change). */
export type GroupCache = WeakMap<Labels, { key: string; labels: Labels }>;

export function aggregate(
  op: AggregateOp,
  grouping: Grouping,
  param: number | string | undefined,
  vec: VSample[],
  cache?: GroupCache,
): VSample[] {
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
  const names = new Set(groupingLabels);
  const withoutNames = new Set([...groupingLabels, METRIC_NAME]);
  const keyOf = (labels: Labels) =>
    grouping.without ? keyWithoutLabels(labels, withoutNames) : keyWithLabels(labels, names);
  const groupOf = (labels: Labels) => {
    let found = op === 'count_values' ? undefined : cache?.get(labels);
    if (!found) {
      found = {
        key: keyOf(labels),
        labels: grouping.without ? withoutLabels(labels, withoutNames) : keepLabels(labels, names),
      };
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
    const group = groups.get(key);
    if (!group) {
      const g: Group = {
        labels: groupLabels,
        value: s.value,
        mean: s.value,
        count: 1,
        heap: [],
        values: [],
      };
      if (op === 'stddev' || op === 'stdvar') g.value = 0;
      else if (op === 'topk' || op === 'bottomk') g.heap = [s];
      else if (op === 'quantile') g.values = [s.value];
      else if (op === 'group') g.value = 1;
      groups.set(key, g);
      ordered.push(g);
      continue;
    }
    switch (op) {
      case 'sum':
        group.value += s.value;
        break;
      case 'avg': {
        group.count++;
        if (!Number.isFinite(group.mean) && !Number.isNaN(group.mean)) {
          if (!Number.isFinite(s.value) && !Number.isNaN(s.value) && group.mean > 0 === s.value > 0) break;
          if (Number.isFinite(s.value)) break;
        }
        group.mean += s.value / group.count - group.mean / group.count;
        break;
      }
      case 'max':
        if (group.value < s.value || Number.isNaN(group.value)) group.value = s.value;
        break;
      case 'min':
        if (group.value > s.value || Number.isNaN(group.value)) group.value = s.value;
        break;
      case 'count':
      case 'count_values':
        group.count++;
        break;
      case 'stddev':
      case 'stdvar': {
        group.count++;
        const delta = s.value - group.mean;
        group.mean += delta / group.count;
        group.value += delta * (s.value - group.mean);
        break;
      }
      case 'topk':
      case 'bottomk': {
        const less = op === 'topk' ? topkLess : bottomkLess;
        const h = group.heap;
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
        group.values.push(s.value);
        break;
      case 'group':
        break;
    }
  }

  const out: VSample[] = [];
  for (const g of ordered) {
    switch (op) {
      case 'avg':
        out.push({ labels: g.labels, value: g.mean });
        break;
      case 'count':
      case 'count_values':
        out.push({ labels: g.labels, value: g.count });
        break;
      case 'stdvar':
        out.push({ labels: g.labels, value: g.value / g.count });
        break;
      case 'stddev':
        out.push({ labels: g.labels, value: Math.sqrt(g.value / g.count) });
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
      case 'quantile':
        out.push({ labels: g.labels, value: quantile(param as number, g.values) });
        break;
      default:
        out.push({ labels: g.labels, value: g.value });
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
 * out once, and each step walks the inputs in order into per-group numbers, with exactly the
 * arithmetic (and order of operations) of `aggregate`, rather than making a vector, a map of
 * groups and an output vector at every step. Groups come out in the order `aggregate`, step after
 * step, first returns them; `each(step)` runs after every step (deadline checks, sample budget).
 */
export function aggregateColumns(
  op: AggregateOp,
  grouping: Grouping,
  inputs: readonly StepColumn[],
  steps: number,
  each: (step: number, groups: number) => void,
): (StepColumn & { points: number })[] {
  if (!COLUMN_OPS.has(op)) throw new Error(`aggregateColumns cannot evaluate ${op}`);
  const names = new Set(grouping.labels);
  const withoutNames = new Set([...grouping.labels, METRIC_NAME]);
  const indexOf = new Map<string, number>();
  const groupLabels: Labels[] = [];
  const groupOf = new Int32Array(inputs.length);
  inputs.forEach((s, j) => {
    const key = grouping.without ? keyWithoutLabels(s.labels, withoutNames) : keyWithLabels(s.labels, names);
    let g = indexOf.get(key);
    if (g === undefined) {
      g = groupLabels.length;
      indexOf.set(key, g);
      groupLabels.push(
        grouping.without ? withoutLabels(s.labels, withoutNames) : keepLabels(s.labels, names),
      );
    }
    groupOf[j] = g;
  });
  const groups = groupLabels.length;
  const value = new Float64Array(groups);
  const mean = new Float64Array(groups);
  const count = new Float64Array(groups);
  const seenAt = new Int32Array(groups).fill(-1);
  const touched = new Int32Array(groups);
  const out: (StepColumn & { points: number })[] = [];
  const outOf = new Int32Array(groups).fill(-1);
  for (let i = 0; i < steps; i++) {
    let nTouched = 0;
    for (let j = 0; j < inputs.length; j++) {
      const s = inputs[j] as StepColumn;
      if (!s.present[i]) continue;
      const v = s.values[i] as number;
      const g = groupOf[j] as number;
      if (seenAt[g] !== i) {
        seenAt[g] = i;
        touched[nTouched++] = g;
        value[g] = op === 'stddev' || op === 'stdvar' ? 0 : op === 'group' ? 1 : v;
        mean[g] = v;
        count[g] = 1;
        continue;
      }
      switch (op) {
        case 'sum':
          value[g] += v;
          break;
        case 'avg': {
          const c = ++count[g];
          const m = mean[g] as number;
          if (!Number.isFinite(m) && !Number.isNaN(m)) {
            if (!Number.isFinite(v) && !Number.isNaN(v) && m > 0 === v > 0) break;
            if (Number.isFinite(v)) break;
          }
          mean[g] = m + (v / c - m / c);
          break;
        }
        case 'max':
          if ((value[g] as number) < v || Number.isNaN(value[g])) value[g] = v;
          break;
        case 'min':
          if ((value[g] as number) > v || Number.isNaN(value[g])) value[g] = v;
          break;
        case 'count':
          count[g]++;
          break;
        case 'stddev':
        case 'stdvar': {
          const c = ++count[g];
          const delta = v - (mean[g] as number);
          mean[g] = (mean[g] as number) + delta / c;
          value[g] = (value[g] as number) + delta * (v - (mean[g] as number));
          break;
        }
        default: // group
          break;
      }
    }
    for (let k = 0; k < nTouched; k++) {
      const g = touched[k] as number;
      let o = outOf[g] as number;
      if (o < 0) {
        o = outOf[g] = out.length;
        out.push({
          labels: groupLabels[g] as Labels,
          values: new Float64Array(steps),
          present: new Uint8Array(steps),
          points: 0,
        });
      }
      const series = out[o] as StepColumn & { points: number };
      const c = count[g] as number;
      series.values[i] =
        op === 'avg'
          ? (mean[g] as number)
          : op === 'count'
            ? c
            : op === 'stdvar'
              ? (value[g] as number) / c
              : op === 'stddev'
                ? Math.sqrt((value[g] as number) / c)
                : (value[g] as number);
      series.present[i] = 1;
      series.points++;
    }
    each(i, nTouched);
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
