import { ExecutionError } from './errors';
import { formatValue } from './format';
import { type GoDate, goDate, goDaysInMonth, goInt64 } from './go-time';
import { goSortArray, type TieOrder } from './go-sort';
import {
  BUCKET_LABEL,
  getLabel,
  isValidLabelName,
  keyWithoutLabels,
  type Labels,
  memoizeLabels,
  METRIC_NAME,
  setLabel,
  withoutLabels,
} from './labels';
import type { Matcher } from './matchers';
import { type Bucket, bucketQuantile, quantile } from './quantile';
import { type AnchoredRegex, compileAnchoredRegex, expandTemplate } from './re2';

/** One element of an instant vector at one step. */
export interface VSample {
  labels: Labels;
  value: number;
}

/** Neumaier's compensated sum step, as Prometheus sums over time. */
export function kahanSumInc(inc: number, sum: number, c: number): [number, number] {
  const t = sum + inc;
  if (Math.abs(sum) >= Math.abs(inc)) c += sum - t + inc;
  else c += inc - t + sum;
  return [t, c];
}

/** Go's math.Pow, whose special cases differ from `**` (1^NaN is 1, (-1)^±Inf is 1). */
export function goPow(x: number, y: number): number {
  if (y === 0) return 1;
  if (x === 1) return 1;
  if (x === -1 && !Number.isFinite(y) && !Number.isNaN(y)) return 1;
  return x ** y;
}

const SIMPLE: Record<string, (v: number) => number> = {
  abs: Math.abs,
  ceil: Math.ceil,
  floor: Math.floor,
  exp: Math.exp,
  sqrt: Math.sqrt,
  ln: Math.log,
  log2: Math.log2,
  log10: Math.log10,
  sin: Math.sin,
  cos: Math.cos,
  tan: Math.tan,
  asin: Math.asin,
  acos: Math.acos,
  atan: Math.atan,
  sinh: Math.sinh,
  cosh: Math.cosh,
  tanh: Math.tanh,
  asinh: Math.asinh,
  acosh: Math.acosh,
  atanh: Math.atanh,
  rad: (v) => (v * Math.PI) / 180,
  deg: (v) => (v * 180) / Math.PI,
  sgn: (v) => (v < 0 ? -1 : v > 0 ? 1 : v),
};

/**
 * Seconds either side of 1970 a JavaScript Date holds (8.64e12), less 400 days: day_of_year reads
 * the year's first day, days_in_month the next month's.
 */
const DATE_LIMIT_S = 8.64e12 - 400 * 86_400;

/** A date function of each calendar: JavaScript's Date, and Go's beyond it (go-time.ts). */
interface DateFunction {
  date: (d: Date) => number;
  go: (d: GoDate) => number;
}

const DATE: Record<string, DateFunction> = {
  day_of_month: { date: (d) => d.getUTCDate(), go: (d) => d.day },
  day_of_week: { date: (d) => d.getUTCDay(), go: (d) => d.weekday },
  day_of_year: {
    date: (d) =>
      Math.round(
        (Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) - Date.UTC(d.getUTCFullYear(), 0, 1)) /
          86_400_000,
      ) + 1,
    go: (d) => d.dayOfYear,
  },
  days_in_month: {
    date: (d) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate(),
    go: goDaysInMonth,
  },
  hour: { date: (d) => d.getUTCHours(), go: (d) => d.hour },
  minute: { date: (d) => d.getUTCMinutes(), go: (d) => d.minute },
  month: { date: (d) => d.getUTCMonth() + 1, go: (d) => d.month },
  year: { date: (d) => d.getUTCFullYear(), go: (d) => d.year },
};

/**
 * A date function of `seconds` as Prometheus computes it, from `time.Unix(int64(seconds), 0)`:
 * by a Date where one holds it, else (NaN, infinities, beyond ±8.6e12 s) by Go's calendar.
 */
function dateFunctionOf(f: DateFunction, seconds: number): number {
  const whole = Math.trunc(seconds);
  return Math.abs(whole) <= DATE_LIMIT_S ? f.date(new Date(whole * 1000)) : f.go(goDate(goInt64(seconds)));
}

/** Go's math.Max: an infinity wins over a NaN (`Math.max` lets the NaN win). */
function goMax(a: number, b: number): number {
  return a === Infinity || b === Infinity ? Infinity : Math.max(a, b);
}

/** Go's math.Min: a negative infinity wins over a NaN. */
function goMin(a: number, b: number): number {
  return a === -Infinity || b === -Infinity ? -Infinity : Math.min(a, b);
}

/** What a function of each element makes of it: undefined drops the element. */
export type ElementFunction = (v: number, scalars: readonly number[], tsMs: number) => number | undefined;

/**
 * Functions of each element's value and the call's scalar arguments at its step (`clamp(v, min,
 * max)`, `round(v, to)`), or the step's time (`timestamp` of a computed vector).
 */
const WITH_SCALARS: Record<string, ElementFunction> = {
  clamp: (v, [min = NaN, max = NaN]) => (max < min ? undefined : goMax(min, goMin(max, v))),
  clamp_min: (v, [min = NaN]) => goMax(min, v),
  clamp_max: (v, [max = NaN]) => goMin(max, v),
  round: (v, [to = 1]) => {
    const toNearestInverse = 1 / to;
    return Math.floor(v * toNearestInverse + 0.5) / toNearestInverse;
  },
  timestamp: (_v, _scalars, tsMs) => tsMs / 1000,
};

/**
 * The function a call applies to each element of its vector (its first argument; the others are
 * scalars read at each step), or undefined where the call is not such a function: one value alone
 * (`abs(v)`, `hour(v)`), or with scalars or the step's time (WITH_SCALARS). The engine maps such
 * a call series by series.
 */
export function elementFunction(name: string, argCount: number): ElementFunction | undefined {
  const simple = SIMPLE[name];
  if (simple && argCount === 1) return (v) => simple(v);
  const date = DATE[name];
  if (date && argCount === 1) return (v) => dateFunctionOf(date, v);
  return WITH_SCALARS[name];
}

/** Argument values of an instant-vector function at one step. */
export type StepArg = VSample[] | number | string;

/** Per-node state kept across steps. */
export interface CallState {
  /** What label_replace or label_join makes of each input label set (checked once, made once a set). */
  relabel?: (labels: Labels) => Labels;
}

/**
 * Functions over instant vectors and scalars, evaluated at one step (`ts` in ms). Returns the
 * output vector; scalar-returning functions return a single element with empty labels.
 */
export function instantFunction(
  name: string,
  args: StepArg[],
  ts: number,
  absentMatchers?: readonly Matcher[],
  tieOrder?: TieOrder,
): VSample[] {
  const vec = () => args[0] as VSample[];
  const num = (i: number) => args[i] as number;

  // Functions of each element (elementFunction) and label_replace/label_join are evaluated by
  // the engine a series at a time, not here.
  const date = DATE[name];
  if (date && args.length === 0) return [{ labels: [], value: dateFunctionOf(date, Math.trunc(ts / 1000)) }];

  switch (name) {
    case 'time':
      return [{ labels: [], value: ts / 1000 }];
    case 'pi':
      return [{ labels: [], value: Math.PI }];
    case 'vector':
      return [{ labels: [], value: num(0) }];
    case 'scalar': {
      const v = vec();
      return [{ labels: [], value: v.length === 1 ? v[0].value : NaN }];
    }
    case 'sort':
      return sortVector(vec(), (a, b) => (Number.isNaN(b) ? true : a < b), tieOrder);
    case 'sort_desc':
      return sortVector(vec(), (a, b) => (Number.isNaN(b) ? true : a > b), tieOrder);
    case 'absent':
      return vec().length > 0 ? [] : [{ labels: absentLabels(absentMatchers), value: 1 }];
    case 'histogram_quantile':
      return histogramQuantile(num(0), args[1] as VSample[]);
    case 'histogram_count':
    case 'histogram_sum':
    case 'histogram_fraction':
      // Only native histograms have these; classic (float) samples are skipped.
      return [];
    default:
      // The parser accepts only FUNCTIONS, each of which is evaluated (engine.test.ts holds it).
      throw new Error(`internal: function ${JSON.stringify(name)} has no evaluator`);
  }
}

/**
 * Go's `sort.Sort` as Prometheus calls it (goSortArray), so ties keep Prometheus's order. `before(a, b)`
 * says a sorts before b.
 */
export function sortVector(
  vec: VSample[],
  before: (a: number, b: number) => boolean,
  tieOrder?: TieOrder,
): VSample[] {
  const out = [...vec];
  goSortArray(out, (x, y) => before(x.value, y.value), tieOrder);
  return out;
}

/** The labels `absent()` reports: those fixed by equality matchers, each named once. */
export function absentLabels(matchers: readonly Matcher[] | undefined): Labels {
  if (!matchers) return [];
  let labels: Labels = [];
  const has = new Set<string>();
  for (const m of matchers) {
    if (m.name === METRIC_NAME) continue;
    if (m.type === '=' && !has.has(m.name)) {
      labels = setLabel(labels, m.name, m.value);
      has.add(m.name);
    } else {
      labels = setLabel(labels, m.name, '');
    }
  }
  return labels;
}

/**
 * What label_replace or label_join (`name`, its string arguments after the vector) makes of each
 * label set: checked once, and made once per series (its first step), counted then against the
 * made-label bounds. Kept in the call's state for its later steps.
 */
export function relabelling(
  name: string,
  strings: readonly string[],
  state: CallState,
): (labels: Labels) => Labels {
  if (state.relabel) return state.relabel;
  const [dst = '', ...rest] = strings;
  let derive: (labels: Labels) => Labels;
  if (name === 'label_replace') {
    const [replacement = '', src = '', regex = ''] = rest;
    let re: AnchoredRegex;
    try {
      re = compileAnchoredRegex(regex);
    } catch {
      throw new ExecutionError(`invalid regular expression in label_replace(): ${regex}`);
    }
    if (!isValidLabelName(dst))
      throw new ExecutionError(`invalid destination label name in label_replace(): ${dst}`);
    const made = madeLabels('label_replace', dst);
    derive = (labels) => {
      const match = re.exec(getLabel(labels, src));
      if (!match) return labels;
      return setLabel(labels, dst, made(expandTemplate(replacement, match, MAX_MADE_LABEL)));
    };
  } else {
    const [separator = '', ...sources] = rest;
    for (const src of sources) {
      if (!isValidLabelName(src))
        throw new ExecutionError(`invalid source label name in label_join(): ${src}`);
    }
    if (!isValidLabelName(dst))
      throw new ExecutionError(`invalid destination label name in label_join(): ${dst}`);
    const made = madeLabels('label_join', dst);
    derive = (labels) => {
      const parts = sources.map((src) => getLabel(labels, src));
      let length = separator.length * Math.max(0, parts.length - 1);
      for (const part of parts) length += part.length;
      return setLabel(labels, dst, made(length > MAX_MADE_LABEL ? undefined : parts.join(separator)));
    };
  }
  return (state.relabel = memoizeLabels(derive));
}

/**
 * The longest label value label_join and label_replace make, and the most characters one call
 * makes across its vector. A short query can double a value at each of a few dozen nested calls
 * (label_join(label_join(…), "a", "", "a", "a")): without a bound it reaches gigabytes.
 */
export const MAX_MADE_LABEL = 65_536;
export const MAX_MADE_LABELS_PER_CALL = 16 * 1024 * 1024;

/** Checks each value a call makes (undefined: over MAX_MADE_LABEL) and their sum. */
function madeLabels(fn: string, dst: string): (value: string | undefined) => string {
  let total = 0;
  return (value) => {
    if (value === undefined)
      throw new ExecutionError(
        `${fn}(): the value of label "${dst}" would be longer than ${MAX_MADE_LABEL.toLocaleString('en-US')} characters`,
      );
    total += value.length;
    if (total > MAX_MADE_LABELS_PER_CALL)
      throw new ExecutionError(
        `${fn}(): the values of label "${dst}" would hold more than ${MAX_MADE_LABELS_PER_CALL.toLocaleString('en-US')} characters in all`,
      );
    return value;
  };
}

const LE_EXCLUDED = new Set([BUCKET_LABEL]);
const LE_AND_NAME = new Set([BUCKET_LABEL, METRIC_NAME]);

/**
 * Go's strconv.ParseFloat for bucket bounds (`+Inf`, `1e3`, `0.5`, `0x1p-3`); undefined when Go
 * refuses it. NaN has no sign in Go; a hexadecimal bound needs its `p` exponent.
 */
export function parseGoFloat(text: string): number | undefined {
  if (/^[+-]?(inf|infinity)$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (/^[+-]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?$/.test(text))
    return Number(text.replace(/_/g, ''));
  const hex = /^([+-]?)0[xX]([0-9a-fA-F_]*)(?:\.([0-9a-fA-F_]*))?[pP]([+-]?\d+)$/.exec(text);
  if (hex) {
    const [, sign, whole = '', fraction = ''] = hex;
    const digits = `${whole}${fraction}`.replace(/_/g, '');
    if (digits === '') return undefined;
    const value = Number.parseInt(digits, 16) * 2 ** (Number(hex[4]) - 4 * fraction.replace(/_/g, '').length);
    return sign === '-' ? -value : value;
  }
  return undefined;
}

function histogramQuantile(q: number, vec: VSample[]): VSample[] {
  const groups = new Map<string, { labels: Labels; buckets: Bucket[] }>();
  for (const s of vec) {
    const upperBound = parseGoFloat(getLabel(s.labels, BUCKET_LABEL));
    if (upperBound === undefined) continue;
    const key = keyWithoutLabels(s.labels, LE_EXCLUDED);
    let group = groups.get(key);
    if (!group) {
      group = { labels: withoutLabels(s.labels, LE_AND_NAME), buckets: [] };
      groups.set(key, group);
    }
    group.buckets.push({ upperBound, count: s.value });
  }
  return [...groups.values()].map((g) => ({ labels: g.labels, value: bucketQuantile(q, g.buckets) }));
}

/** The window of one series at one step, with what range functions need to know about it. */
export interface Window {
  t: ArrayLike<number>;
  v: ArrayLike<number>;
  /** First index inside the window and one past the last. */
  lo: number;
  hi: number;
  /** Evaluation time and the window's bounds, in ms. */
  ts: number;
  rangeStart: number;
  rangeEnd: number;
  rangeMs: number;
  /** Scalar arguments at this step (quantile_over_time's φ, predict_linear's seconds, ...). */
  scalars: number[];
}

export type RangeFunction = (w: Window) => number | undefined;

function extrapolatedRate(w: Window, isCounter: boolean, isRate: boolean): number | undefined {
  const { t, v, lo, hi } = w;
  const n = hi - lo;
  if (n < 2) return undefined;
  const first = v[lo];
  const last = v[hi - 1];
  let result = last - first;
  if (isCounter) {
    let prev = first;
    for (let i = lo + 1; i < hi; i++) {
      if (v[i] < prev) result += prev;
      prev = v[i];
    }
  }
  let durationToStart = (t[lo] - w.rangeStart) / 1000;
  const durationToEnd = (w.rangeEnd - t[hi - 1]) / 1000;
  const sampledInterval = (t[hi - 1] - t[lo]) / 1000;
  const averageDurationBetweenSamples = sampledInterval / (n - 1);
  if (isCounter && result > 0 && first >= 0) {
    // A counter cannot go below zero: do not extrapolate past the point where it would be zero.
    const durationToZero = sampledInterval * (first / result);
    if (durationToZero < durationToStart) durationToStart = durationToZero;
  }
  const threshold = averageDurationBetweenSamples * 1.1;
  let extrapolateToInterval = sampledInterval;
  extrapolateToInterval += durationToStart < threshold ? durationToStart : averageDurationBetweenSamples / 2;
  extrapolateToInterval += durationToEnd < threshold ? durationToEnd : averageDurationBetweenSamples / 2;
  let factor = extrapolateToInterval / sampledInterval;
  if (isRate) factor /= w.rangeMs / 1000;
  return result * factor;
}

function instantValue(w: Window, isRate: boolean): number | undefined {
  const { t, v, lo, hi } = w;
  if (hi - lo < 2) return undefined;
  const last = v[hi - 1];
  const previous = v[hi - 2];
  let result = isRate && last < previous ? last : last - previous;
  const sampledInterval = t[hi - 1] - t[hi - 2];
  if (sampledInterval === 0) return undefined;
  if (isRate) result /= sampledInterval / 1000;
  return result;
}

/** Least squares over the window: slope per second, and the value at interceptTime. */
function linearRegression(w: Window, interceptTime: number): [number, number] {
  const { t, v, lo, hi } = w;
  let n = 0;
  let sumX = 0,
    cX = 0,
    sumY = 0,
    cY = 0,
    sumXY = 0,
    cXY = 0,
    sumX2 = 0,
    cX2 = 0;
  const initY = v[lo];
  let constY = true;
  for (let i = lo; i < hi; i++) {
    if (constY && i > lo && v[i] !== initY) constY = false;
    n += 1;
    const x = (t[i] - interceptTime) / 1e3;
    [sumX, cX] = kahanSumInc(x, sumX, cX);
    [sumY, cY] = kahanSumInc(v[i], sumY, cY);
    [sumXY, cXY] = kahanSumInc(x * v[i], sumXY, cXY);
    [sumX2, cX2] = kahanSumInc(x * x, sumX2, cX2);
  }
  if (constY) {
    if (!Number.isFinite(initY) && !Number.isNaN(initY)) return [NaN, NaN];
    return [0, initY];
  }
  sumX += cX;
  sumY += cY;
  sumXY += cXY;
  sumX2 += cX2;
  const covXY = sumXY - (sumX * sumY) / n;
  const varX = sumX2 - (sumX * sumX) / n;
  const slope = covXY / varX;
  return [slope, sumY / n - (slope * sumX) / n];
}

function stdvarOverTime(w: Window): number {
  let count = 0;
  let mean = 0,
    cMean = 0,
    aux = 0,
    cAux = 0;
  for (let i = w.lo; i < w.hi; i++) {
    const x = w.v[i];
    count++;
    const delta = x - (mean + cMean);
    [mean, cMean] = kahanSumInc(delta / count, mean, cMean);
    [aux, cAux] = kahanSumInc(delta * (x - (mean + cMean)), aux, cAux);
  }
  return (aux + cAux) / count;
}

function holtWinters(w: Window): number | undefined {
  const [sf, tf] = w.scalars;
  if (sf <= 0 || sf >= 1)
    throw new ExecutionError(`invalid smoothing factor. Expected: 0 < sf < 1, got: ${sf.toFixed(6)}`);
  if (tf <= 0 || tf >= 1)
    throw new ExecutionError(`invalid trend factor. Expected: 0 < tf < 1, got: ${tf.toFixed(6)}`);
  const { v, lo, hi } = w;
  if (hi - lo < 2) return undefined;
  let s0 = 0;
  let s1 = v[lo];
  let b = v[lo + 1] - v[lo];
  for (let i = 1; i < hi - lo; i++) {
    const x = sf * v[lo + i];
    b = i - 1 === 0 ? b : tf * (s1 - s0) + (1 - tf) * b;
    const y = (1 - sf) * (s1 + b);
    s0 = s1;
    s1 = x + y;
  }
  return s1;
}

/** Functions over range vectors, each computing one value from one series' window (or none). */
export const RANGE_FUNCTIONS: Record<string, RangeFunction> = {
  rate: (w) => extrapolatedRate(w, true, true),
  increase: (w) => extrapolatedRate(w, true, false),
  delta: (w) => extrapolatedRate(w, false, false),
  irate: (w) => instantValue(w, true),
  idelta: (w) => instantValue(w, false),
  deriv: (w) => (w.hi - w.lo < 2 ? undefined : linearRegression(w, w.t[w.lo])[0]),
  predict_linear: (w) => {
    if (w.hi - w.lo < 2) return undefined;
    const [slope, intercept] = linearRegression(w, w.ts);
    return slope * w.scalars[0] + intercept;
  },
  holt_winters: holtWinters,
  resets: (w) => {
    let resets = 0;
    for (let i = w.lo + 1; i < w.hi; i++) if (w.v[i] < w.v[i - 1]) resets++;
    return resets;
  },
  changes: (w) => {
    let changes = 0;
    for (let i = w.lo + 1; i < w.hi; i++) {
      const cur = w.v[i];
      const prev = w.v[i - 1];
      if (cur !== prev && !(Number.isNaN(cur) && Number.isNaN(prev))) changes++;
    }
    return changes;
  },
  avg_over_time: (w) => {
    let mean = 0,
      c = 0,
      count = 0;
    for (let i = w.lo; i < w.hi; i++) {
      const x = w.v[i];
      count++;
      if (!Number.isFinite(mean) && !Number.isNaN(mean)) {
        // An infinite mean stays as it is unless a NaN or the opposite infinity arrives.
        if (!Number.isFinite(x) && !Number.isNaN(x) && mean > 0 === x > 0) continue;
        if (Number.isFinite(x)) continue;
      }
      [mean, c] = kahanSumInc(x / count - mean / count, mean, c);
    }
    return !Number.isFinite(mean) && !Number.isNaN(mean) ? mean : mean + c;
  },
  sum_over_time: (w) => {
    let sum = 0,
      c = 0;
    for (let i = w.lo; i < w.hi; i++) [sum, c] = kahanSumInc(w.v[i], sum, c);
    return !Number.isFinite(sum) && !Number.isNaN(sum) ? sum : sum + c;
  },
  count_over_time: (w) => w.hi - w.lo,
  present_over_time: () => 1,
  absent_over_time: () => 1,
  last_over_time: (w) => w.v[w.hi - 1],
  max_over_time: (w) => {
    let max = w.v[w.lo];
    for (let i = w.lo; i < w.hi; i++) if (w.v[i] > max || Number.isNaN(max)) max = w.v[i];
    return max;
  },
  min_over_time: (w) => {
    let min = w.v[w.lo];
    for (let i = w.lo; i < w.hi; i++) if (w.v[i] < min || Number.isNaN(min)) min = w.v[i];
    return min;
  },
  quantile_over_time: (w) => {
    const values: number[] = [];
    for (let i = w.lo; i < w.hi; i++) values.push(w.v[i]);
    return quantile(w.scalars[0], values);
  },
  stdvar_over_time: stdvarOverTime,
  stddev_over_time: (w) => Math.sqrt(stdvarOverTime(w)),
};

/** The `count_values` label value: the sample value as Prometheus prints it. */
export const countValuesLabel = formatValue;
