import { type BinaryOp, isComparisonOp, type VectorMatching } from './ast';
import { ExecutionError } from './errors';
import { goPow, type VSample } from './functions';
import {
  dropMetricName,
  formatLabels,
  getLabel,
  keepLabels,
  keyWithLabels,
  keyWithoutLabels,
  type Labels,
  labelsKeyOf,
  memoizeLabels,
  METRIC_NAME,
  setLabel,
  withoutLabels,
} from './labels';

/** Arithmetic drops the metric name; comparisons and set operators keep it. */
export function dropsMetricName(op: BinaryOp): boolean {
  return op === '+' || op === '-' || op === '*' || op === '/' || op === '%' || op === '^';
}

/** The arithmetic operators, on two numbers. */
const ARITHMETIC: Partial<Record<BinaryOp, (lhs: number, rhs: number) => number>> = {
  '+': (l, r) => l + r,
  '-': (l, r) => l - r,
  '*': (l, r) => l * r,
  '/': (l, r) => l / r,
  '%': (l, r) => l % r,
  '^': goPow,
  atan2: Math.atan2,
};

/** The comparison operators, on two numbers: whether the pair is kept. */
const COMPARISON: Partial<Record<BinaryOp, (lhs: number, rhs: number) => boolean>> = {
  '==': (l, r) => l === r,
  '!=': (l, r) => l !== r,
  '>': (l, r) => l > r,
  '<': (l, r) => l < r,
  '>=': (l, r) => l >= r,
  '<=': (l, r) => l <= r,
};

function notBetweenNumbers(op: BinaryOp): never {
  throw new ExecutionError(`operator ${JSON.stringify(op)} not allowed for operations between vectors`);
}

/** The value of `lhs op rhs` and, for comparisons, whether the pair is kept. */
export function elementBinop(op: BinaryOp, lhs: number, rhs: number): [number, boolean] {
  const arithmetic = ARITHMETIC[op];
  if (arithmetic) return [arithmetic(lhs, rhs), true];
  const comparison = COMPARISON[op];
  if (comparison) return [lhs, comparison(lhs, rhs)];
  return notBetweenNumbers(op);
}

/**
 * `l op r` for an element `l` (a vector's, the left one's between two vectors) and `r` (a scalar,
 * or the right vector's element; with `swap`, the scalar is on the left): the result's value (a
 * comparison keeps the element's; with `bool`, 1 or 0), or undefined where a comparison drops it.
 * Made once per operator: the engine applies it a series at a time.
 */
export function elementOperator(
  op: BinaryOp,
  swap: boolean,
  returnBool: boolean,
): (vector: number, scalar: number) => number | undefined {
  const arithmetic = ARITHMETIC[op];
  if (arithmetic) return swap ? (v, k) => arithmetic(k, v) : (v, k) => arithmetic(v, k);
  const holds = COMPARISON[op] ?? notBetweenNumbers(op);
  if (returnBool) return swap ? (v, k) => (holds(k, v) ? 1 : 0) : (v, k) => (holds(v, k) ? 1 : 0);
  // A comparison keeps the vector's value, whichever side the scalar is on.
  return swap ? (v, k) => (holds(k, v) ? v : undefined) : (v, k) => (holds(v, k) ? v : undefined);
}

export function scalarBinop(op: BinaryOp, lhs: number, rhs: number): number {
  const [value, keep] = elementBinop(op, lhs, rhs);
  return isComparisonOp(op) ? (keep ? 1 : 0) : value;
}

/**
 * The function giving each series its matching signature for `on(...)`/`ignoring(...)`, worked
 * out once per label set (a series is matched again at every step).
 */
export function signatureFunction(matching: VectorMatching): (labels: Labels) => string {
  if (matching.on) {
    const names = new Set(matching.labels);
    return memoizeLabels((labels) => keyWithLabels(labels, names));
  }
  const names = new Set([...matching.labels, METRIC_NAME]);
  return memoizeLabels((labels) => keyWithoutLabels(labels, names));
}

function matchedLabels(labels: Labels, matching: VectorMatching): Labels {
  if (matching.on) return keepLabels(labels, new Set(matching.labels));
  return withoutLabels(labels, new Set([...matching.labels, METRIC_NAME]));
}

/**
 * The function giving the label set of an element matched between two series: the left one's (the
 * "many" side's) with the name dropped where the operator drops it, cut to the matching labels for
 * one-to-one, then the `group_left(...)` labels taken from the right. Worked out once per left
 * series (and right series where labels are taken from it), not at every step.
 */
export function resultMetricFunction(
  op: BinaryOp,
  matching: VectorMatching,
  returnBool: boolean,
): (lhs: Labels, rhs: Labels) => Labels {
  const listed = new Set(matching.labels);
  const base = memoizeLabels((lhs) => {
    let out = lhs;
    if (dropsMetricName(op)) out = dropMetricName(out);
    if (matching.card === 'one-to-one')
      out = matching.on ? keepLabels(out, listed) : withoutLabels(out, listed);
    return returnBool && matching.include.length === 0 ? dropMetricName(out) : out;
  });
  if (matching.include.length === 0) return base;
  const byLeft = memoizeLabels((lhs) =>
    memoizeLabels((rhs) => {
      let out = base(lhs);
      for (const name of matching.include) out = setLabel(out, name, getLabel(rhs, name));
      return returnBool ? dropMetricName(out) : out;
    }),
  );
  return (lhs, rhs) => byLeft(lhs)(rhs);
}

/**
 * Arithmetic and comparison between two instant vectors at one step, with Prometheus's matching:
 * one-to-one unless `group_left`/`group_right` says which side is the "many" one, and its errors
 * when a match group is not unique.
 */
export function vectorBinop(
  op: BinaryOp,
  lhsIn: VSample[],
  rhsIn: VSample[],
  matching: VectorMatching,
  returnBool: boolean,
  sig: (l: Labels) => string,
  resultMetric: (lhs: Labels, rhs: Labels) => Labels,
): VSample[] {
  if (lhsIn.length === 0 || rhsIn.length === 0) return [];
  const swapped = matching.card === 'one-to-many';
  const [lhs, rhs] = swapped ? [rhsIn, lhsIn] : [lhsIn, rhsIn];

  const rightSigs = new Map<string, VSample>();
  for (const rs of rhs) {
    const s = sig(rs.labels);
    const dup = rightSigs.get(s);
    if (dup) {
      throw new ExecutionError(
        `found duplicate series for the match group ${formatLabels(matchedLabels(rs.labels, matching))} on the ${swapped ? 'left' : 'right'} hand-side of the operation: [${formatLabels(rs.labels)}, ${formatLabels(dup.labels)}];many-to-many matching not allowed: matching labels must be unique on one side`,
      );
    }
    rightSigs.set(s, rs);
  }

  const matchedSigs = new Map<string, Set<string> | null>();
  const out: VSample[] = [];
  for (const ls of lhs) {
    const s = sig(ls.labels);
    const rs = rightSigs.get(s);
    if (!rs) continue;
    const [vl, vr] = swapped ? [rs.value, ls.value] : [ls.value, rs.value];
    const [computed, keep] = elementBinop(op, vl, vr);
    if (!returnBool && !keep) continue;
    const value = returnBool ? (keep ? 1 : 0) : computed;
    const metric = resultMetric(ls.labels, rs.labels);
    const inserted = matchedSigs.get(s);
    if (matching.card === 'one-to-one') {
      if (inserted !== undefined) {
        throw new ExecutionError(
          'multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)',
        );
      }
      matchedSigs.set(s, null);
    } else {
      const key = labelsKeyOf(metric);
      if (inserted === undefined) {
        matchedSigs.set(s, new Set([key]));
      } else if (inserted?.has(key)) {
        throw new ExecutionError('multiple matches for labels: grouping labels must ensure unique matches');
      } else {
        inserted?.add(key);
      }
    }
    out.push({ labels: metric, value });
  }
  return out;
}
