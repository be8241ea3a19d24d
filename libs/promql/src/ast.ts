import type { Matcher } from './matchers';

/** The four value types of PromQL, spelled as the HTTP API spells `resultType`. */
export type ValueType = 'scalar' | 'vector' | 'matrix' | 'string';

export interface PositionRange {
  start: number;
  end: number;
}

/** `@ <timestamp>`, `@ start()` or `@ end()`. */
export type AtModifier = { kind: 'timestamp'; ms: number } | { kind: 'start' } | { kind: 'end' };

export interface NumberLiteral {
  kind: 'number';
  value: number;
  pos: PositionRange;
}

export interface StringLiteral {
  kind: 'string';
  value: string;
  pos: PositionRange;
}

export interface VectorSelector {
  kind: 'vector_selector';
  /** The metric name written before the braces, if any (it is also one of the matchers). */
  name?: string;
  matchers: Matcher[];
  offsetMs: number;
  at?: AtModifier;
  pos: PositionRange;
}

export interface MatrixSelector {
  kind: 'matrix_selector';
  selector: VectorSelector;
  rangeMs: number;
  pos: PositionRange;
}

export interface SubqueryExpr {
  kind: 'subquery';
  expr: Expr;
  rangeMs: number;
  /** 0 when the step was left out (`[1h:]`): the engine's default subquery step applies. */
  stepMs: number;
  offsetMs: number;
  at?: AtModifier;
  pos: PositionRange;
}

export interface Call {
  kind: 'call';
  func: FunctionSignature;
  args: Expr[];
  pos: PositionRange;
}

export type AggregateOp =
  | 'sum'
  | 'avg'
  | 'min'
  | 'max'
  | 'count'
  | 'group'
  | 'stddev'
  | 'stdvar'
  | 'topk'
  | 'bottomk'
  | 'quantile'
  | 'count_values';

export interface AggregateExpr {
  kind: 'aggregate';
  op: AggregateOp;
  expr: Expr;
  param?: Expr;
  grouping: string[];
  without: boolean;
  pos: PositionRange;
}

export type ArithmeticOp = '+' | '-' | '*' | '/' | '%' | '^' | 'atan2';
export type ComparisonOp = '==' | '!=' | '>' | '<' | '>=' | '<=';
export type SetOp = 'and' | 'or' | 'unless';
export type BinaryOp = ArithmeticOp | ComparisonOp | SetOp;

export type Cardinality = 'one-to-one' | 'many-to-one' | 'one-to-many' | 'many-to-many';

export interface VectorMatching {
  card: Cardinality;
  /** true for `on(...)`, false for `ignoring(...)` or no clause. */
  on: boolean;
  labels: string[];
  /** The labels of `group_left(...)`/`group_right(...)`, taken from the "one" side. */
  include: string[];
}

export interface BinaryExpr {
  kind: 'binary';
  op: BinaryOp;
  lhs: Expr;
  rhs: Expr;
  returnBool: boolean;
  /** Present only when both sides are instant vectors. */
  matching?: VectorMatching;
  pos: PositionRange;
}

export interface UnaryExpr {
  kind: 'unary';
  op: '-' | '+';
  expr: Expr;
  pos: PositionRange;
}

export interface ParenExpr {
  kind: 'paren';
  expr: Expr;
  pos: PositionRange;
}

export type Expr =
  | NumberLiteral
  | StringLiteral
  | VectorSelector
  | MatrixSelector
  | SubqueryExpr
  | Call
  | AggregateExpr
  | BinaryExpr
  | UnaryExpr
  | ParenExpr;

export interface FunctionSignature {
  name: string;
  argTypes: ValueType[];
  /** 0: exactly argTypes; n > 0: up to n more of the last type may be left out; -1: any more. */
  variadic: number;
  returnType: ValueType;
}

const fn = (name: string, argTypes: ValueType[], returnType: ValueType, variadic = 0): FunctionSignature => ({
  name,
  argTypes,
  variadic,
  returnType,
});

const V: ValueType = 'vector';
const M: ValueType = 'matrix';
const S: ValueType = 'scalar';
const STR: ValueType = 'string';

/** The functions of Prometheus 2 (its `parser.Functions`), with their argument types. */
export const FUNCTIONS: ReadonlyMap<string, FunctionSignature> = new Map(
  [
    ...[
      'abs',
      'ceil',
      'floor',
      'exp',
      'sqrt',
      'ln',
      'log2',
      'log10',
      'sgn',
      'timestamp',
      'absent',
      'sort',
      'sort_desc',
    ].map((n) => fn(n, [V], V)),
    ...[
      'sin',
      'cos',
      'tan',
      'asin',
      'acos',
      'atan',
      'sinh',
      'cosh',
      'tanh',
      'asinh',
      'acosh',
      'atanh',
      'deg',
      'rad',
    ].map((n) => fn(n, [V], V)),
    ...['histogram_count', 'histogram_sum'].map((n) => fn(n, [V], V)),
    ...[
      'avg_over_time',
      'min_over_time',
      'max_over_time',
      'sum_over_time',
      'count_over_time',
      'last_over_time',
      'present_over_time',
      'stddev_over_time',
      'stdvar_over_time',
      'absent_over_time',
      'rate',
      'irate',
      'increase',
      'delta',
      'idelta',
      'deriv',
      'resets',
      'changes',
    ].map((n) => fn(n, [M], V)),
    ...['day_of_month', 'day_of_week', 'day_of_year', 'days_in_month', 'hour', 'minute', 'month', 'year'].map(
      (n) => fn(n, [V], V, 1),
    ),
    fn('quantile_over_time', [S, M], V),
    fn('predict_linear', [M, S], V),
    fn('holt_winters', [M, S, S], V),
    fn('histogram_quantile', [S, V], V),
    fn('histogram_fraction', [S, S, V], V),
    fn('clamp', [V, S, S], V),
    fn('clamp_min', [V, S], V),
    fn('clamp_max', [V, S], V),
    fn('round', [V, S], V, 1),
    fn('label_replace', [V, STR, STR, STR, STR], V),
    fn('label_join', [V, STR, STR, STR], V, -1),
    fn('scalar', [V], S),
    fn('vector', [S], V),
    fn('time', [], S),
    fn('pi', [], S),
  ].map((f) => [f.name, f]),
);

export const AGGREGATE_OPS: ReadonlySet<string> = new Set<AggregateOp>([
  'sum',
  'avg',
  'min',
  'max',
  'count',
  'group',
  'stddev',
  'stdvar',
  'topk',
  'bottomk',
  'quantile',
  'count_values',
]);

export function isComparisonOp(op: BinaryOp): op is ComparisonOp {
  return op === '==' || op === '!=' || op === '>' || op === '<' || op === '>=' || op === '<=';
}

export function isSetOp(op: BinaryOp): op is SetOp {
  return op === 'and' || op === 'or' || op === 'unless';
}

/** The type an expression evaluates to. */
export function typeOf(expr: Expr): ValueType {
  switch (expr.kind) {
    case 'number':
      return 'scalar';
    case 'string':
      return 'string';
    case 'vector_selector':
    case 'aggregate':
      return 'vector';
    case 'matrix_selector':
    case 'subquery':
      return 'matrix';
    case 'call':
      return expr.func.returnType;
    case 'binary':
      return typeOf(expr.lhs) === 'scalar' && typeOf(expr.rhs) === 'scalar' ? 'scalar' : 'vector';
    case 'unary':
    case 'paren':
      return typeOf(expr.expr);
  }
}

/** How Prometheus names a type in its error messages. */
export function documentedType(t: ValueType | 'none'): string {
  switch (t) {
    case 'vector':
      return 'instant vector';
    case 'matrix':
      return 'range vector';
    default:
      return t;
  }
}
