import { aggregateColumns, StepAggregation } from './aggregate';
import {
  type AggregateExpr,
  type AtModifier,
  type BinaryExpr,
  type Call,
  documentedType,
  type Expr,
  isSetOp,
  type MatrixSelector,
  type SubqueryExpr,
  typeOf,
  type VectorMatching,
  type VectorSelector,
} from './ast';
import {
  dropsMetricName,
  elementOperator,
  resultMetricFunction,
  scalarBinop,
  signatureFunction,
  vectorBinop,
} from './binary';
import {
  BadDataError,
  ExecutionError,
  QueryCanceledError,
  QueryTimeoutError,
  TooManySamplesError,
} from './errors';
import {
  absentLabels,
  type CallState,
  elementFunction,
  instantFunction,
  RANGE_FUNCTIONS,
  relabelling,
  type StepArg,
  type VSample,
} from './functions';
import { compareLabels, dropMetricName, type Labels, labelsKey, labelsKeyOf } from './labels';
import { DEFAULT_TIE_ORDER, type TieOrder } from './go-sort';
import { parseExpr } from './parser';
import type { SelectHints, SeriesSource } from './source';

export interface EngineOptions {
  source: SeriesSource;
  /** How far back an instant selector looks for a sample (Prometheus: 5m). */
  lookbackDeltaMs?: number;
  /** Most samples a query may hold in memory at once (Prometheus: 50,000,000). */
  maxSamples?: number;
  /** Default query timeout (Prometheus: 2m). */
  timeoutMs?: number;
  /** Step of subqueries written without one (`[1h:]`): Prometheus's global evaluation interval, 1m. */
  defaultSubqueryStepMs?: number;
  /** Most points per series a range query may return (Prometheus: 11,000). */
  maxPointsPerSeries?: number;
  /** The clock for timeouts. */
  now?: () => number;
  /**
   * Which Go release's sort.Sort orders equal values in sort(), sort_desc(), topk() and bottomk():
   * the Prometheus to agree with was built with Go 1.19-1.23 ('go1.19') or 1.24 and later
   * ('go1.24', the default).
   */
  tieOrder?: TieOrder;
}

export interface QueryOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface InstantSample {
  labels: Labels;
  /** Milliseconds. */
  t: number;
  value: number;
}

export interface RangeSeries {
  labels: Labels;
  /** Milliseconds, ascending. */
  timestamps: number[];
  values: number[];
}

export type QueryResult =
  | { resultType: 'vector'; result: InstantSample[] }
  | { resultType: 'matrix'; result: RangeSeries[] }
  | { resultType: 'scalar'; result: { t: number; value: number } }
  | { resultType: 'string'; result: { t: number; value: string } };

/** The evaluation times of one (sub)query: start, start + step, ..., up to end. */
interface Grid {
  start: number;
  end: number;
  step: number;
  n: number;
}

/** One series' values at the steps of a grid; `present[i]` says whether step i has a value. */
interface StepSeries {
  labels: Labels;
  values: Float64Array;
  present: Uint8Array;
  points: number;
}

/** The innermost function or aggregation around a selector, passed to the source as a hint. */
interface Enclosing {
  func?: string;
  grouping?: string[];
  by?: boolean;
}

interface RawSeries {
  labels: Labels;
  t: ArrayLike<number>;
  v: ArrayLike<number>;
}

const DEFAULTS = {
  lookbackDeltaMs: 5 * 60_000,
  maxSamples: 50_000_000,
  timeoutMs: 2 * 60_000,
  defaultSubqueryStepMs: 60_000,
  maxPointsPerSeries: 11_000,
  tieOrder: DEFAULT_TIE_ORDER as TieOrder,
};

/**
 * Evaluates PromQL over a `SeriesSource` with Prometheus's semantics. Each query parses the
 * expression, then evaluates it node by node over the grid of evaluation times: selectors stream
 * one series at a time from the source and keep only their values at the steps; functions over
 * ranges slide a window over one series at a time; aggregations, operators and instant-vector
 * functions combine their inputs step by step.
 */
export class PromQLEngine {
  private readonly options: typeof DEFAULTS & { source: SeriesSource; now: () => number };

  constructor(options: EngineOptions) {
    this.options = { ...DEFAULTS, now: Date.now, ...stripUndefined(options) } as PromQLEngine['options'];
  }

  /** The value of `query` at one time (ms), like `/api/v1/query`. */
  async instantQuery(query: string, timeMs: number, options: QueryOptions = {}): Promise<QueryResult> {
    const expr = parseExpr(query);
    const grid: Grid = { start: timeMs, end: timeMs, step: 1, n: 1 };
    const ev = this.evaluator(grid, options);
    const type = typeOf(expr);
    return ev.run(async () => {
      if (type === 'string') return { resultType: 'string', result: { t: timeMs, value: stringValue(expr) } };
      if (type === 'matrix') {
        const raw = await ev.matrix(expr, grid);
        raw.sort((a, b) => compareLabels(a.labels, b.labels));
        return {
          resultType: 'matrix',
          result: raw.map((s) => ({
            labels: s.labels,
            timestamps: Array.from(s.t),
            values: Array.from(s.v),
          })),
        };
      }
      const steps = await ev.steps(expr, grid, {});
      if (type === 'scalar')
        return { resultType: 'scalar', result: { t: timeMs, value: steps[0].values[0] } };
      return {
        resultType: 'vector',
        result: steps.map((s) => ({ labels: s.labels, t: timeMs, value: s.values[0] })),
      };
    });
  }

  /** The values of `query` from start to end every step (all ms), like `/api/v1/query_range`. */
  async rangeQuery(
    query: string,
    startMs: number,
    endMs: number,
    stepMs: number,
    options: QueryOptions = {},
  ): Promise<QueryResult> {
    if (!(stepMs > 0)) {
      throw new BadDataError(
        'zero or negative query resolution step widths are not accepted. Try a positive integer',
      );
    }
    if (endMs < startMs) throw new BadDataError('end timestamp must not be before start time');
    if (Math.floor((endMs - startMs) / stepMs) > this.options.maxPointsPerSeries) {
      throw new BadDataError(
        `exceeded maximum resolution of ${this.options.maxPointsPerSeries.toLocaleString('en-US')} points per timeseries. Try decreasing the query resolution (?step=XX)`,
      );
    }
    const expr = parseExpr(query);
    const type = typeOf(expr);
    if (type !== 'vector' && type !== 'scalar') {
      throw new BadDataError(
        `invalid expression type ${JSON.stringify(documentedType(type))} for range query, must be Scalar or instant Vector`,
      );
    }
    const grid: Grid = {
      start: startMs,
      end: endMs,
      step: stepMs,
      n: Math.floor((endMs - startMs) / stepMs) + 1,
    };
    const ev = this.evaluator(grid, options);
    return ev.run(async () => {
      const steps = await ev.steps(expr, grid, {});
      const result: RangeSeries[] = steps.map((s) => {
        const timestamps: number[] = [];
        const values: number[] = [];
        for (let i = 0; i < grid.n; i++) {
          if (!s.present[i]) continue;
          timestamps.push(grid.start + i * grid.step);
          values.push(s.values[i]);
        }
        return { labels: s.labels, timestamps, values };
      });
      result.sort((a, b) => compareLabels(a.labels, b.labels));
      return { resultType: 'matrix', result };
    });
  }

  private evaluator(grid: Grid, options: QueryOptions): Evaluator {
    const o = this.options;
    return new Evaluator({
      source: o.source,
      lookbackMs: o.lookbackDeltaMs,
      maxSamples: o.maxSamples,
      deadline: o.now() + (options.timeoutMs ?? o.timeoutMs),
      now: o.now,
      signal: options.signal,
      queryStart: grid.start,
      queryEnd: grid.end,
      defaultSubqueryStepMs: o.defaultSubqueryStepMs,
      tieOrder: o.tieOrder,
    });
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function unwrapParens(expr: Expr): Expr {
  while (expr.kind === 'paren') expr = expr.expr;
  return expr;
}

function stringValue(expr: Expr): string {
  const e = unwrapParens(expr);
  if (e.kind !== 'string') throw new ExecutionError('expected a string literal');
  return e.value;
}

interface EvaluatorConfig {
  source: SeriesSource;
  lookbackMs: number;
  maxSamples: number;
  deadline: number;
  now: () => number;
  signal?: AbortSignal;
  queryStart: number;
  queryEnd: number;
  defaultSubqueryStepMs: number;
  tieOrder: TieOrder;
}

/** A label set as it is (operators that keep the metric name). */
const sameLabels = (labels: Labels): Labels => labels;

/** How long one query holds the event loop before letting it run (Evaluator.pause). */
const PAUSE_EVERY_MS = 20;

const STALE_HI = 0x7ff00000;
const STALE_LO = 0x00000002;

class Evaluator {
  /** Samples held by the query right now (step values of live node results, windows). */
  private samples = 0;
  /** Step cells of every series this query has made (newSeries), held or not since. */
  private cells = 0;
  private checks = 0;
  /** When this query last let the event loop run, by its clock; and whether it is due to again. */
  private pausedAt = 0;
  private pauseDue = false;
  private readonly callState = new WeakMap<Call, CallState>();
  constructor(private readonly c: EvaluatorConfig) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    this.pausedAt = this.c.now();
    this.check(true);
    return fn();
  }

  /**
   * Ends the query when it is past its deadline or aborted; cheap enough for inner loops. `work`
   * is what the caller did since it last asked (points of a window, say): the clock is read every
   * 1024 of it, so a step that reads a day of points counts as that, not as one.
   */
  check(force = false, work = 1): void {
    this.checks += work;
    if (!force && this.checks < 1024) return;
    this.checks = 0;
    if (this.c.signal?.aborted) throw new QueryCanceledError('expression evaluation');
    const now = this.c.now();
    if (now > this.c.deadline) throw new QueryTimeoutError('expression evaluation');
    if (now - this.pausedAt >= PAUSE_EVERY_MS) this.pauseDue = true;
  }

  /**
   * Lets the event loop run (health checks, other requests, the streamer's ingest) when this
   * query has held it for PAUSE_EVERY_MS: called between steps of the loops that can run long.
   */
  private async pause(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.pauseDue = false;
    this.pausedAt = this.c.now();
  }

  private hold(n: number): void {
    this.samples += n;
    if (this.samples > this.c.maxSamples) throw new TooManySamplesError();
  }

  /**
   * Refuses a grid with more points than the budget has left, before anything grid-sized is
   * allocated for it (every series of its steps holds grid.n values). A query's own grid is
   * bounded by maxPointsPerSeries; a subquery's (`[30d:1ms]`) is not.
   */
  private fits(grid: Grid): void {
    if (this.samples + grid.n > this.c.maxSamples) throw new TooManySamplesError();
  }

  private release(inputs: StepSeries[][]): void {
    for (const input of inputs) for (const s of input) this.samples -= s.points;
  }

  private atTime(at: AtModifier | undefined): number | undefined {
    if (!at) return undefined;
    if (at.kind === 'start') return this.c.queryStart;
    if (at.kind === 'end') return this.c.queryEnd;
    return at.ms;
  }

  /** The time (ms) a selector or subquery looks at for step i: `@` if set, minus the offset. */
  private refTime(grid: Grid, i: number, at: number | undefined, offsetMs: number): number {
    return (at ?? grid.start + i * grid.step) - offsetMs;
  }

  // ---- range-vector expressions (a top-level range selector or subquery of an instant query) ----

  async matrix(expr: Expr, grid: Grid): Promise<RawSeries[]> {
    const e = unwrapParens(expr);
    if (e.kind !== 'matrix_selector' && e.kind !== 'subquery')
      throw new ExecutionError(`unexpected range vector ${e.kind}`);
    const out: RawSeries[] = [];
    const ref = this.refTime(
      grid,
      0,
      this.atTime(e.kind === 'subquery' ? e.at : e.selector.at),
      e.kind === 'subquery' ? e.offsetMs : e.selector.offsetMs,
    );
    const range = e.kind === 'subquery' ? e.rangeMs : e.rangeMs;
    for await (const s of this.rangeSeries(e, grid, {})) {
      const t: number[] = [];
      const v: number[] = [];
      for (let i = 0; i < s.t.length; i++) {
        if (s.t[i] >= ref - range && s.t[i] <= ref) {
          t.push(s.t[i]);
          v.push(s.v[i]);
        }
      }
      if (t.length === 0) continue;
      this.hold(t.length);
      out.push({ labels: s.labels, t, v });
    }
    return out;
  }

  /**
   * The series of a range selector or subquery, staleness markers removed, each covering every
   * window the grid will ask for.
   */
  private async *rangeSeries(
    e: MatrixSelector | SubqueryExpr,
    grid: Grid,
    enclosing: Enclosing,
  ): AsyncGenerator<RawSeries> {
    if (e.kind === 'matrix_selector') {
      const vs = e.selector;
      const at = this.atTime(vs.at);
      const first = this.refTime(grid, 0, at, vs.offsetMs);
      const last = this.refTime(grid, grid.n - 1, at, vs.offsetMs);
      const hints: SelectHints = {
        startMs: first - e.rangeMs,
        endMs: last,
        stepMs: grid.n > 1 ? grid.step : 0,
        rangeMs: e.rangeMs,
        ...enclosing,
      };
      for await (const s of this.c.source.select(vs.matchers, hints, this.c.signal)) {
        this.check(true);
        const words = new Uint32Array(s.values.buffer, s.values.byteOffset, s.values.length * 2);
        let stale = 0;
        for (let i = 0; i < s.values.length; i++)
          if (words[2 * i] === STALE_LO && words[2 * i + 1] === STALE_HI) stale++;
        if (stale === 0) {
          yield { labels: s.labels, t: s.timestamps, v: s.values };
          continue;
        }
        const t = new Float64Array(s.values.length - stale);
        const v = new Float64Array(s.values.length - stale);
        let j = 0;
        for (let i = 0; i < s.values.length; i++) {
          if (words[2 * i] === STALE_LO && words[2 * i + 1] === STALE_HI) continue;
          t[j] = s.timestamps[i];
          v[j++] = s.values[i];
        }
        yield { labels: s.labels, t, v };
      }
      return;
    }
    // A subquery: evaluate the inner expression on its own grid, aligned to multiples of its step.
    const at = this.atTime(e.at);
    const first = this.refTime(grid, 0, at, e.offsetMs);
    const last = this.refTime(grid, grid.n - 1, at, e.offsetMs);
    const step = e.stepMs || this.c.defaultSubqueryStepMs;
    let start = step * Math.trunc((first - e.rangeMs) / step);
    if (start < first - e.rangeMs) start += step;
    const inner: Grid = {
      start,
      end: last,
      step,
      n: last < start ? 0 : Math.floor((last - start) / step) + 1,
    };
    if (inner.n === 0) return;
    this.fits(inner);
    const steps = await this.steps(e.expr, inner, enclosing);
    for (const s of steps) {
      const t = new Float64Array(s.points);
      const v = new Float64Array(s.points);
      let j = 0;
      for (let i = 0; i < inner.n; i++) {
        if (!s.present[i]) continue;
        t[j] = inner.start + i * inner.step;
        v[j++] = s.values[i];
      }
      yield { labels: s.labels, t, v };
    }
    this.release([steps]);
  }

  // ---- instant vectors and scalars, as values at every step of a grid ----

  async steps(expr: Expr, grid: Grid, enclosing: Enclosing): Promise<StepSeries[]> {
    this.check(true);
    switch (expr.kind) {
      case 'paren':
        return this.steps(expr.expr, grid, enclosing);
      case 'number':
        return this.constant(grid, expr.value);
      case 'string':
        throw new ExecutionError('a string cannot be evaluated as a vector');
      case 'vector_selector':
        return this.vectorSelector(expr, grid, enclosing, false);
      case 'matrix_selector':
      case 'subquery':
        throw new ExecutionError(`cannot evaluate a range vector as an instant vector`);
      case 'unary':
        return this.unary(expr.op, expr.expr, grid, enclosing);
      case 'binary':
        return this.binary(expr, grid);
      case 'aggregate':
        return this.aggregate(expr, grid);
      case 'call':
        return this.call(expr, grid);
    }
  }

  private constant(grid: Grid, value: number): StepSeries[] {
    this.hold(grid.n);
    const values = new Float64Array(grid.n).fill(value);
    const present = new Uint8Array(grid.n).fill(1);
    return [{ labels: [], values, present, points: grid.n }];
  }

  /**
   * A series of the grid: a cell for every step, whether or not it gets a value. The cells a query
   * makes are bounded by maxSamples too (9 bytes each): `count_values` over a long range makes a
   * series per distinct value, each as long as the grid, for points that fill one cell each.
   */
  private newSeries(labels: Labels, grid: Grid): StepSeries {
    this.cells += grid.n;
    if (this.cells > this.c.maxSamples) throw new TooManySamplesError();
    return { labels, values: new Float64Array(grid.n), present: new Uint8Array(grid.n), points: 0 };
  }

  /**
   * An instant selector: at each step the newest sample at or before the reference time, if it
   * is no older than the lookback delta and is not a staleness marker. With `sampleTimes`, the
   * values are the samples' timestamps in seconds instead (what `timestamp()` reports).
   */
  private async vectorSelector(
    vs: VectorSelector,
    grid: Grid,
    enclosing: Enclosing,
    sampleTimes: boolean,
  ): Promise<StepSeries[]> {
    const at = this.atTime(vs.at);
    const offset = vs.offsetMs;
    const lookback = this.c.lookbackMs;
    const first = this.refTime(grid, 0, at, offset);
    const last = this.refTime(grid, grid.n - 1, at, offset);
    const hints: SelectHints = {
      startMs: first - lookback,
      endMs: last,
      stepMs: grid.n > 1 ? grid.step : 0,
      rangeMs: 0,
      ...enclosing,
    };
    const out: StepSeries[] = [];
    let sorted = true;
    for await (const s of this.c.source.select(vs.matchers, hints, this.c.signal)) {
      this.check(true);
      if (this.pauseDue) await this.pause();
      const { timestamps: T, values: V } = s;
      const words = new Uint32Array(V.buffer, V.byteOffset, V.length * 2);
      let series: StepSeries | undefined;
      let j = -1;
      for (let i = 0; i < grid.n; i++) {
        const ref = this.refTime(grid, i, at, offset);
        while (j + 1 < T.length && T[j + 1] <= ref) j++;
        if (j < 0 || T[j] < ref - lookback) continue;
        if (words[2 * j] === STALE_LO && words[2 * j + 1] === STALE_HI) continue;
        series ??= this.newSeries(s.labels, grid);
        series.values[i] = sampleTimes ? T[j] / 1000 : V[j];
        series.present[i] = 1;
        series.points++;
      }
      if (!series) continue;
      this.hold(series.points);
      if (out.length > 0 && compareLabels(out[out.length - 1].labels, series.labels) > 0) sorted = false;
      out.push(series);
    }
    if (!sorted) out.sort((a, b) => compareLabels(a.labels, b.labels));
    return out;
  }

  /**
   * Combines inputs step by step: `fn` gets each input's vector at a step (scalars as a single
   * element) and returns the output vector, whose label sets must be unique; what it returns is
   * gathered into series by label set. The label sets `fn` returns for a series are the same
   * arrays at every step (labels.ts memoizes what operators and functions derive), so their keys
   * are made once. Counts the samples of each step toward the clock check and lets the event loop
   * run between steps when due: one step of a fleet-wide operator is tens of thousands of samples.
   */
  private async combine(
    grid: Grid,
    inputs: StepSeries[][],
    fn: (vectors: VSample[][], ts: number) => VSample[],
  ): Promise<StepSeries[]> {
    const out = new Map<string, StepSeries>();
    const vectors: VSample[][] = inputs.map(() => []);
    // One sample object per input series, its value set at each step: what `fn` gets is read
    // before the next step, and a series' labels are the same at every step.
    const samples = inputs.map((input) => input.map((s): VSample => ({ labels: s.labels, value: 0 })));
    for (let i = 0; i < grid.n; i++) {
      if (this.pauseDue) await this.pause();
      const ts = grid.start + i * grid.step;
      let work = 1;
      for (let k = 0; k < inputs.length; k++) {
        const vec: VSample[] = [];
        const input = inputs[k];
        const own = samples[k];
        for (let j = 0; j < input.length; j++) {
          const s = input[j];
          if (!s.present[i]) continue;
          const sample = own[j];
          sample.value = s.values[i];
          vec.push(sample);
        }
        vectors[k] = vec;
        work += input.length;
      }
      const result = fn(vectors, ts);
      for (const r of result) {
        const key = labelsKeyOf(r.labels);
        let series = out.get(key);
        if (!series) {
          series = this.newSeries(r.labels, grid);
          out.set(key, series);
        } else if (series.present[i]) {
          // Already given a value at this step: two results with one label set.
          throw new ExecutionError('vector cannot contain metrics with the same labelset');
        }
        series.values[i] = r.value;
        series.present[i] = 1;
        series.points++;
      }
      this.hold(result.length);
      this.check(false, work + result.length);
    }
    this.release(inputs);
    return [...out.values()];
  }

  private async unary(op: '-' | '+', inner: Expr, grid: Grid, enclosing: Enclosing): Promise<StepSeries[]> {
    const steps = await this.steps(inner, grid, enclosing);
    if (op === '+') return steps;
    const seen = new Set<string>();
    for (const s of steps) {
      s.labels = dropMetricName(s.labels);
      for (let i = 0; i < grid.n; i++) s.values[i] = -s.values[i];
      const key = labelsKey(s.labels);
      if (seen.has(key)) throw new ExecutionError('vector cannot contain metrics with the same labelset');
      seen.add(key);
    }
    return steps;
  }

  private async binary(e: BinaryExpr, grid: Grid): Promise<StepSeries[]> {
    const lt = typeOf(e.lhs);
    const rt = typeOf(e.rhs);
    const lhs = await this.steps(e.lhs, grid, {});
    const rhs = await this.steps(e.rhs, grid, {});
    if (lt === 'scalar' && rt === 'scalar') {
      return this.combine(grid, [lhs, rhs], ([l, r]) => [
        { labels: [], value: scalarBinop(e.op, l[0].value, r[0].value) },
      ]);
    }
    if (lt === 'vector' && rt === 'vector') {
      const matching = e.matching ?? { card: 'one-to-one', on: false, labels: [], include: [] };
      const sig = signatureFunction(matching);
      if (isSetOp(e.op)) return this.setOp(e.op, grid, lhs, rhs, sig);
      const out = await this.matched(e, matching, grid, lhs, rhs, sig);
      if (out) return out;
      const metric = resultMetricFunction(e.op, matching, e.returnBool);
      return this.combine(grid, [lhs, rhs], ([l, r]) =>
        vectorBinop(e.op, l, r, matching, e.returnBool, sig, metric),
      );
    }
    // A vector and a scalar: each series on its own.
    const swap = lt !== 'vector';
    const [vector, scalar] = swap ? [rhs, lhs] : [lhs, rhs];
    const k = (scalar[0] as StepSeries).values;
    const element = elementOperator(e.op, swap, e.returnBool);
    const labelsOf = dropsMetricName(e.op) || e.returnBool ? dropMetricName : sameLabels;
    const out = await this.eachSeries(grid, vector, labelsOf, (v, i) => element(v, k[i] as number));
    this.release([scalar]);
    return out;
  }

  /**
   * An operation on each series alone (an operator with a scalar, a function of one value, a
   * relabelling), evaluated a series at a time over every step: its labels are worked out once,
   * not at each step. `valueOf` gets a value and its step, and returns undefined to drop it.
   */
  private async eachSeries(
    grid: Grid,
    input: StepSeries[],
    labelsOf: (labels: Labels) => Labels,
    valueOf: (value: number, step: number) => number | undefined,
  ): Promise<StepSeries[]> {
    const out = new Map<string, StepSeries>();
    for (const s of input) {
      if (this.pauseDue) await this.pause();
      const put = this.writer(out, labelsOf(s.labels), grid);
      for (let i = 0; i < grid.n; i++) {
        if (!s.present[i]) continue;
        const value = valueOf(s.values[i] as number, i);
        if (value !== undefined) put(i, value);
      }
      this.check(false, 1 + grid.n);
    }
    this.release([input]);
    return [...out.values()];
  }

  /**
   * Writes one input series' results into the output series of `labels`, made at its first value
   * (an input that yields nothing makes none). Outputs are merged by label set, as step-by-step
   * evaluation merges them; two values for one label set at one step is Prometheus's error.
   */
  private writer(
    out: Map<string, StepSeries>,
    labels: Labels,
    grid: Grid,
  ): (step: number, value: number) => void {
    let target: StepSeries | undefined;
    return (i, value) => {
      if (!target) {
        const key = labelsKeyOf(labels);
        target = out.get(key);
        if (!target) out.set(key, (target = this.newSeries(labels, grid)));
      }
      if (target.present[i]) throw new ExecutionError('vector cannot contain metrics with the same labelset');
      target.values[i] = value;
      target.present[i] = 1;
      target.points++;
      this.hold(1);
    };
  }

  /**
   * `and`, `or` and `unless` series by series: which signatures the other side has at each step
   * is worked out once, then each series is kept or not step by step. `and` keeps a left element
   * whose signature the right side has at its step, `unless` one whose signature it lacks (every
   * one where the right side is empty), `or` every left element and each right one whose
   * signature the left side lacks.
   */
  private async setOp(
    op: 'and' | 'or' | 'unless',
    grid: Grid,
    lhs: StepSeries[],
    rhs: StepSeries[],
    sig: (labels: Labels) => string,
  ): Promise<StepSeries[]> {
    /** The steps at which any series of `side` with each signature has a value. */
    const presentBySig = (side: StepSeries[]): Map<string, Uint8Array> => {
      const by = new Map<string, Uint8Array>();
      for (const s of side) {
        const key = sig(s.labels);
        let present = by.get(key);
        if (!present) by.set(key, (present = new Uint8Array(grid.n)));
        for (let i = 0; i < grid.n; i++) present[i] |= s.present[i] as number;
      }
      return by;
    };
    const none = new Uint8Array(grid.n);
    const out = new Map<string, StepSeries>();
    /** Copies each series' values at the steps where the other side's signature is `want` (0 or 1). */
    const copy = async (series: StepSeries[], other: Map<string, Uint8Array> | undefined, want: number) => {
      for (const s of series) {
        if (this.pauseDue) await this.pause();
        const put = this.writer(out, s.labels, grid);
        const there = other ? (other.get(sig(s.labels)) ?? none) : undefined;
        for (let i = 0; i < grid.n; i++) {
          if (s.present[i] && (!there || there[i] === want)) put(i, s.values[i] as number);
        }
        this.check(false, 1 + grid.n);
      }
    };
    if (op === 'or') {
      // Every left element; a right one where no left element of its signature is.
      await copy(lhs, undefined, 1);
      await copy(rhs, presentBySig(lhs), 0);
    } else {
      // A left element where the right has one of its signature (and), or has none (unless).
      await copy(lhs, presentBySig(rhs), op === 'and' ? 1 : 0);
    }
    this.release([lhs, rhs]);
    return [...out.values()];
  }

  /**
   * Arithmetic or comparison between two vectors, series by series: each series of the "many"
   * side (the left one, the right for `group_right`) meets the series of its signature on the
   * other side at the steps both have a value, and its result's label set is worked out once per
   * pair. Where a step-by-step evaluation could fail (two series of the "one" side with a value
   * under one signature at one step; for one-to-one, two left series of a signature; otherwise,
   * two of a signature that would make one label set), undefined: the caller then evaluates step
   * by step, which reports the error where and as Prometheus does.
   */
  private async matched(
    e: BinaryExpr,
    matching: VectorMatching,
    grid: Grid,
    lhs: StepSeries[],
    rhs: StepSeries[],
    sig: (labels: Labels) => string,
  ): Promise<StepSeries[] | undefined> {
    const swapped = matching.card === 'one-to-many';
    const [many, one] = swapped ? [rhs, lhs] : [lhs, rhs];
    const resultMetric = resultMetricFunction(e.op, matching, e.returnBool);
    const bySig = (side: StepSeries[]): Map<string, StepSeries[]> => {
      const groups = new Map<string, StepSeries[]>();
      for (const s of side) {
        const key = sig(s.labels);
        const group = groups.get(key);
        if (!group) groups.set(key, [s]);
        else group.push(s);
      }
      return groups;
    };
    const others = bySig(one);
    for (const group of others.values()) {
      if (group.length === 1) continue;
      for (let i = 0; i < grid.n; i++) {
        let n = 0;
        for (const s of group) n += s.present[i] as number;
        if (n > 1) return undefined;
      }
    }
    for (const [key, group] of bySig(many)) {
      if (group.length === 1) continue;
      if (matching.card === 'one-to-one') return undefined;
      for (const o of others.get(key) ?? []) {
        const made = new Set(group.map((m) => labelsKeyOf(resultMetric(m.labels, o.labels))));
        if (made.size < group.length) return undefined;
      }
    }
    const element = elementOperator(e.op, false, e.returnBool);
    const out = new Map<string, StepSeries>();
    for (const m of many) {
      if (this.pauseDue) await this.pause();
      for (const o of others.get(sig(m.labels)) ?? []) {
        const put = this.writer(out, resultMetric(m.labels, o.labels), grid);
        const [l, r] = swapped ? [o, m] : [m, o];
        for (let i = 0; i < grid.n; i++) {
          if (!l.present[i] || !r.present[i]) continue;
          const value = element(l.values[i] as number, r.values[i] as number);
          if (value !== undefined) put(i, value);
        }
      }
      this.check(false, 1 + grid.n);
    }
    this.release([lhs, rhs]);
    return [...out.values()];
  }

  private async aggregate(e: AggregateExpr, grid: Grid): Promise<StepSeries[]> {
    const grouping = { labels: e.grouping, without: e.without };
    const enclosing: Enclosing = { func: e.op, grouping: e.grouping, by: !e.without };
    if (e.op === 'count_values') {
      const label = e.param ? stringValue(e.param) : '';
      const input = await this.steps(e.expr, grid, enclosing);
      return this.aggregateSteps(new StepAggregation(e.op, grouping, input, label), grid, input);
    }
    if (e.param) {
      const param = await this.steps(e.param, grid, {});
      const input = await this.steps(e.expr, grid, enclosing);
      const out = await this.aggregateSteps(
        new StepAggregation(e.op, grouping, input, '', this.c.tieOrder),
        grid,
        input,
        (param[0] as StepSeries).values,
      );
      this.release([param]);
      return out;
    }
    // The rest (COLUMN_OPS): every step at once, without a vector per step.
    const input = await this.steps(e.expr, grid, enclosing);
    const out = aggregateColumns(e.op, grouping, input, grid.n, () => this.check(false, grid.n));
    this.hold(out.reduce((n, s) => n + s.points, 0));
    this.release([input]);
    return out;
  }

  /**
   * `topk`, `bottomk`, `quantile` and `count_values` (StepAggregation) step after step, each
   * output written into the series of its label set (`writer`), letting the event loop
   * run between steps when due.
   */
  private async aggregateSteps(
    aggregation: StepAggregation,
    grid: Grid,
    input: StepSeries[],
    param?: Float64Array,
  ): Promise<StepSeries[]> {
    const byKey = new Map<string, StepSeries>();
    /** Each output's writer, made the first time it answers. */
    const writers: ((step: number, value: number) => void)[] = [];
    let step = 0;
    let made = 0;
    const emit = (output: number, labels: Labels, value: number) => {
      (writers[output] ??= this.writer(byKey, labels, grid))(step, value);
      made++;
    };
    for (; step < grid.n; step++) {
      if (this.pauseDue) await this.pause();
      made = 0;
      aggregation.step(step, param ? (param[step] as number) : NaN, emit);
      this.check(false, 1 + input.length + made);
    }
    this.release([input]);
    return [...byKey.values()];
  }

  private async call(e: Call, grid: Grid): Promise<StepSeries[]> {
    const name = e.func.name;
    const matrixIndex = e.args.findIndex((a) => typeOf(a) === 'matrix');
    if (matrixIndex >= 0) return this.rangeCall(e, matrixIndex, grid);

    const enclosing: Enclosing = { func: name };
    let state = this.callState.get(e);
    if (!state) this.callState.set(e, (state = {}));
    const first = e.args[0] ? unwrapParens(e.args[0]) : undefined;
    if (name === 'timestamp' && first?.kind === 'vector_selector') {
      // The time of the sample itself, not of the step.
      const times = await this.vectorSelector(first, grid, enclosing, true);
      return this.combine(grid, [times], ([v]) =>
        v.map((s) => ({ labels: dropMetricName(s.labels), value: s.value })),
      );
    }
    // Over more than one step, sort and sort_desc change nothing: a range query's series come out
    // in label order, and Prometheus keeps no order between steps (its docs say sort affects
    // instant queries only). Sorting every step of a fleet cost seconds for nothing.
    if ((name === 'sort' || name === 'sort_desc') && grid.n > 1) {
      return this.steps(e.args[0] as Expr, grid, enclosing);
    }
    // A function of each element (with the call's scalars at each step), or a relabelling: each
    // series on its own. The timestamp of a computed vector is its step's time (a selector's is
    // read above).
    const element = elementFunction(name, e.args.length);
    if (element) {
      const input = await this.steps(e.args[0] as Expr, grid, enclosing);
      const args: StepSeries[][] = [];
      for (const arg of e.args.slice(1)) args.push(await this.steps(arg, grid, enclosing));
      const columns = args.map(([scalar]) => (scalar as StepSeries).values);
      const scalars = columns.map(() => NaN);
      const out = await this.eachSeries(grid, input, dropMetricName, (v, i) => {
        for (let k = 0; k < columns.length; k++) scalars[k] = (columns[k] as Float64Array)[i] as number;
        return element(v, scalars, grid.start + i * grid.step);
      });
      this.release(args);
      return out;
    }
    if (name === 'label_replace' || name === 'label_join') {
      const input = await this.steps(e.args[0] as Expr, grid, enclosing);
      const relabel = relabelling(name, e.args.slice(1).map(stringValue), state);
      return this.eachSeries(grid, input, relabel, (v) => v);
    }
    const absentMatchers =
      name === 'absent' && first?.kind === 'vector_selector' ? first.matchers : undefined;
    const inputs: StepSeries[][] = [];
    const kinds: ('steps' | string)[] = [];
    for (const arg of e.args) {
      if (typeOf(arg) === 'string') {
        kinds.push(stringValue(arg));
      } else {
        kinds.push('steps');
        inputs.push(await this.steps(arg, grid, enclosing));
      }
    }
    const argTypes = e.args.map(typeOf);
    return this.combine(grid, inputs, (vectors, ts) => {
      let k = 0;
      const args: StepArg[] = kinds.map((kind, i) => {
        if (argTypes[i] === 'string') return kind;
        const vec = vectors[k++];
        return argTypes[i] === 'scalar' ? vec[0].value : vec;
      });
      return instantFunction(name, args, ts, absentMatchers, this.c.tieOrder);
    });
  }

  /** A function over a range vector: one window per series and step, one series at a time. */
  private async rangeCall(e: Call, matrixIndex: number, grid: Grid): Promise<StepSeries[]> {
    const name = e.func.name;
    const fn = RANGE_FUNCTIONS[name];
    // The parser accepts only FUNCTIONS, each of which is evaluated (engine.test.ts holds it).
    if (!fn) throw new Error(`internal: range function ${JSON.stringify(name)} has no evaluator`);
    const scalarInputs: StepSeries[][] = [];
    for (let i = 0; i < e.args.length; i++)
      if (i !== matrixIndex) scalarInputs.push(await this.steps(e.args[i], grid, {}));
    const arg = unwrapParens(e.args[matrixIndex]) as MatrixSelector | SubqueryExpr;
    const at = this.atTime(arg.kind === 'subquery' ? arg.at : arg.selector.at);
    const offset = arg.kind === 'subquery' ? arg.offsetMs : arg.selector.offsetMs;
    const rangeMs = arg.rangeMs;
    const keepName = name === 'last_over_time';
    const absent = name === 'absent_over_time';
    const covered = absent ? new Uint8Array(grid.n) : undefined;
    const out: StepSeries[] = [];
    const seen = new Set<string>();
    const scalars: number[] = new Array(scalarInputs.length).fill(0);

    for await (const s of this.rangeSeries(arg, grid, { func: name })) {
      const series = this.newSeries(keepName ? s.labels : dropMetricName(s.labels), grid);
      let lo = 0;
      let hi = 0;
      for (let i = 0; i < grid.n; i++) {
        if (this.pauseDue) await this.pause();
        const ref = this.refTime(grid, i, at, offset);
        const from = ref - rangeMs;
        while (lo < s.t.length && s.t[lo] < from) lo++;
        if (hi < lo) hi = lo;
        while (hi < s.t.length && s.t[hi] <= ref) hi++;
        this.check(false, 1 + hi - lo);
        if (hi <= lo) continue;
        if (this.samples + (hi - lo) > this.c.maxSamples) throw new TooManySamplesError();
        if (covered) {
          covered[i] = 1;
          continue;
        }
        for (let k = 0; k < scalarInputs.length; k++) scalars[k] = scalarInputs[k][0].values[i];
        const value = fn({
          t: s.t,
          v: s.v,
          lo,
          hi,
          ts: grid.start + i * grid.step,
          rangeStart: from,
          rangeEnd: ref,
          rangeMs,
          scalars,
        });
        if (value === undefined) continue;
        series.values[i] = value;
        series.present[i] = 1;
        series.points++;
      }
      if (series.points === 0) continue;
      this.hold(series.points);
      const key = labelsKey(series.labels);
      if (seen.has(key)) throw new ExecutionError('vector cannot contain metrics with the same labelset');
      seen.add(key);
      out.push(series);
    }
    this.release(scalarInputs);

    if (covered) {
      const series = this.newSeries(
        absentLabels(arg.kind === 'matrix_selector' ? arg.selector.matchers : undefined),
        grid,
      );
      for (let i = 0; i < grid.n; i++) {
        if (covered[i]) continue;
        series.values[i] = 1;
        series.present[i] = 1;
        series.points++;
      }
      if (series.points === 0) return [];
      this.hold(series.points);
      return [series];
    }
    return out;
  }
}
