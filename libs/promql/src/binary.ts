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
  labelsKey,
  METRIC_NAME,
  setLabel,
  withoutLabels,
} from './labels';

/** Arithmetic drops the metric name; comparisons and set operators keep it. */
export function dropsMetricName(op: BinaryOp): boolean {
  return op === '+' || op === '-' || op === '*' || op === '/' || op === '%' || op === '^';
}

/** The value of `lhs op rhs` and, for comparisons, whether the pair is kept. */
export function elementBinop(op: BinaryOp, lhs: number, rhs: number): [number, boolean] {
  switch (op) {
    case '+':
      return [lhs + rhs, true];
    case '-':
      return [lhs - rhs, true];
    case '*':
      return [lhs * rhs, true];
    case '/':
      return [lhs / rhs, true];
    case '%':
      return [lhs % rhs, true];
    case '^':
      return [goPow(lhs, rhs), true];
    case 'atan2':
      return [Math.atan2(lhs, rhs), true];
    case '==':
      return [lhs, lhs === rhs];
    case '!=':
      return [lhs, lhs !== rhs];
    case '>':
      return [lhs, lhs > rhs];
    case '<':
      return [lhs, lhs < rhs];
    case '>=':
      return [lhs, lhs >= rhs];
    case '<=':
      return [lhs, lhs <= rhs];
    default:
      throw new ExecutionError(`operator ${JSON.stringify(op)} not allowed for operations between vectors`);
  }
}

export function scalarBinop(op: BinaryOp, lhs: number, rhs: number): number {
  const [value, keep] = elementBinop(op, lhs, rhs);
  return isComparisonOp(op) ? (keep ? 1 : 0) : value;
}

/** The function giving each series its matching signature for `on(...)`/`ignoring(...)`. */
export function signatureFunction(matching: VectorMatching): (labels: Labels) => string {
  if (matching.on) {
    const names = new Set(matching.labels);
    return (labels) => keyWithLabels(labels, names);
  }
  const names = new Set([...matching.labels, METRIC_NAME]);
  return (labels) => keyWithoutLabels(labels, names);
}

export function vectorAnd(lhs: VSample[], rhs: VSample[], sig: (l: Labels) => string): VSample[] {
  if (lhs.length === 0 || rhs.length === 0) return [];
  const right = new Set(rhs.map((s) => sig(s.labels)));
  return lhs.filter((s) => right.has(sig(s.labels)));
}

export function vectorOr(lhs: VSample[], rhs: VSample[], sig: (l: Labels) => string): VSample[] {
  if (lhs.length === 0) return [...rhs];
  if (rhs.length === 0) return [...lhs];
  const left = new Set(lhs.map((s) => sig(s.labels)));
  return [...lhs, ...rhs.filter((s) => !left.has(sig(s.labels)))];
}

export function vectorUnless(lhs: VSample[], rhs: VSample[], sig: (l: Labels) => string): VSample[] {
  if (lhs.length === 0 || rhs.length === 0) return [...lhs];
  const right = new Set(rhs.map((s) => sig(s.labels)));
  return lhs.filter((s) => !right.has(sig(s.labels)));
}

function matchedLabels(labels: Labels, matching: VectorMatching): Labels {
  if (matching.on) return keepLabels(labels, new Set(matching.labels));
  return withoutLabels(labels, new Set([...matching.labels, METRIC_NAME]));
}

function resultMetric(lhs: Labels, rhs: Labels, op: BinaryOp, matching: VectorMatching): Labels {
  let out = lhs;
  if (dropsMetricName(op)) out = dropMetricName(out);
  if (matching.card === 'one-to-one') {
    out = matching.on
      ? keepLabels(out, new Set(matching.labels))
      : withoutLabels(out, new Set(matching.labels));
  }
  for (const name of matching.include) out = setLabel(out, name, getLabel(rhs, name));
  return out;
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
    let metric = resultMetric(ls.labels, rs.labels, op, matching);
    if (returnBool) metric = dropMetricName(metric);
    const inserted = matchedSigs.get(s);
    if (matching.card === 'one-to-one') {
      if (inserted !== undefined) {
        throw new ExecutionError(
          'multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)',
        );
      }
      matchedSigs.set(s, null);
    } else {
      const key = labelsKey(metric);
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

/** A vector against a scalar (`swap`: the scalar is on the left). */
export function vectorScalarBinop(
  op: BinaryOp,
  vec: VSample[],
  scalar: number,
  swap: boolean,
  returnBool: boolean,
): VSample[] {
  const out: VSample[] = [];
  for (const s of vec) {
    const [lv, rv] = swap ? [scalar, s.value] : [s.value, scalar];
    let [value, keep] = elementBinop(op, lv, rv);
    // A comparison keeps the vector's value even when the scalar is on the left.
    if (isComparisonOp(op) && swap) value = rv;
    if (returnBool) {
      value = keep ? 1 : 0;
      keep = true;
    }
    if (!keep) continue;
    out.push({ labels: dropsMetricName(op) || returnBool ? dropMetricName(s.labels) : s.labels, value });
  }
  return out;
}
