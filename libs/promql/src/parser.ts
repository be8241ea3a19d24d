import { parser as lezerParser } from '@prometheus-io/lezer-promql';
import {
  AGGREGATE_OPS,
  type AggregateExpr,
  type AggregateOp,
  type AtModifier,
  type BinaryExpr,
  type BinaryOp,
  type Cardinality,
  documentedType,
  type Expr,
  FUNCTIONS,
  isComparisonOp,
  isSetOp,
  type MatrixSelector,
  type PositionRange,
  type SubqueryExpr,
  typeOf,
  type ValueType,
  type VectorSelector,
} from './ast';
import { parseDuration } from './duration';
import { BadDataError, parseErrorMessage } from './errors';
import { formatGoFixed } from './format';
import { bracketProblem, endContext, lex, type SyntaxProblem, unexpectedToken } from './lexer';
import { METRIC_NAME } from './labels';
import { compileMatcher, type Matcher, type MatchType } from './matchers';

/** Brackets a query may nest: far beyond any real query, well within what lezer takes. */
export const MAX_NESTING = 1_000;

/**
 * Parses a PromQL expression with the grammar the Prometheus project publishes
 * (`@prometheus-io/lezer-promql`) and checks it the way Prometheus's own parser does: types of
 * arguments and operands, aggregation parameters, `bool` only on comparisons, selectors that could
 * match everything, where `offset` and `@` may stand. The grammar also knows newer experimental
 * syntax (duration arithmetic, `fill`, `limitk`, quoted label names...); those are refused here.
 * Every problem is a `BadDataError` whose message reads like Prometheus's (`1:5: parse error: ...`).
 */
export function parseExpr(query: string): Expr {
  try {
    return new Converter(query).parse();
  } catch (error) {
    // The stack ran out (a tree deeper than the limits below foresee): a query refused, not a 500.
    if (error instanceof RangeError) {
      throw new BadDataError(parseErrorMessage(query, 0, 'the query is nested too deeply to read'), {
        start: 0,
        end: 0,
      });
    }
    throw error;
  }
}

/**
 * Binary operators a query may hold (outside strings, comments, braces and brackets; every `-`
 * and `+` counted, signs too). A chain of them is a tree one level deeper each: lezer stops a chain
 * past 2,000 characters after 300 more (a kludge against trees too deep to walk, which made `or` of
 * ~415 selectors a parse error), and Prometheus takes any number. Here a query may hold this many,
 * whatever their order, a depth every walk of the tree (lezer's, the converter's, the engine's)
 * takes beside MAX_NESTING brackets.
 */
export const MAX_OPERATORS = 1_000;

/**
 * The tree of `text`, parsed as lezer's `parse` does but without its limit on a chain of
 * operations (its counter of them, internal to lezer, reset between steps): forGrammar has
 * bounded the operators already.
 */
function parseTree(text: string): ReturnType<typeof lezerParser.parse> {
  const parse: ReturnType<typeof lezerParser.startParse> & { bigReductionCount?: number } =
    lezerParser.startParse(text);
  for (;;) {
    if (typeof parse.bigReductionCount === 'number') parse.bigReductionCount = 0;
    const tree = parse.advance();
    if (tree) return tree;
  }
}

/**
 * A series selector as the `match[]` parameter of the series, labels and label values endpoints
 * takes it (Prometheus' ParseMetricSelector): one instant vector selector and nothing else.
 */
export function parseMetricSelector(text: string): Matcher[] {
  const expr = parseExpr(text);
  if (expr.kind !== 'vector_selector' || expr.offsetMs !== 0 || expr.at) {
    throw new BadDataError(
      `1:1: parse error: expected a series selector such as metric{label="value"}, got ${JSON.stringify(text)}`,
    );
  }
  return expr.matchers;
}

/**
 * Prometheus 2 functions the published grammar no longer knows (`holt_winters`, renamed in
 * Prometheus 3). Each call is parsed under a known name of the same length, so every position
 * stays right; the converter reads names from the original text.
 */
const RENAMED_FOR_GRAMMAR: Record<string, string> = { holt_winters: 'day_of_month' };

const WORD = /[a-z_]+/y;
/** What forGrammar counts as a binary operator (MAX_OPERATORS): `=` only as the end of `==` or `!=`. */
const OPERATOR_CHARS = new Set(['+', '-', '*', '/', '%', '^', '<', '>', '=']);
const WORD_OPERATORS = new Set(['and', 'or', 'unless', 'atan2']);
const CALL = /\s*\(/y;
/**
 * `0X1f`, and a number ending in its point (`5.`, `5.e2`) where a token ends, which Prometheus
 * reads and lezer does not.
 */
const GO_NUMBER = /0X|([0-9]+)\.(?![0-9])([eE][+-]?[0-9]+)?(?![\w:.])/y;

/**
 * The query as the published grammar can read it, every position unchanged: functions it no longer
 * knows renamed (RENAMED_FOR_GRAMMAR), and numbers Prometheus's lexer takes but lezer's does not
 * (`0X1F`, `5.`, `5.e2`) written as the same number in the same length (`0x1F`, `5 `, `5e2 `).
 * The converter reads names and numbers from the original text.
 *
 * On the way, a query nested deeper than MAX_NESTING brackets outside strings and comments is
 * refused (`tooDeep`, at the bracket) before lezer reads it: its error recovery on a megabyte of
 * `(` or `abs(` took seconds, holding the event loop, for a query that fails anyway (lezer gives
 * up near 8,000 deep).
 */
function forGrammar(
  query: string,
  tooDeep: (at: number) => never,
  tooManyOperators: (at: number) => never,
): string {
  let out = '';
  let quote = '';
  let depth = 0;
  /** Open braces and brackets: inside them `=`, `!=`, `-` are matchers and durations. */
  let inside = 0;
  let operators = 0;
  const operator = (at: number) => {
    if (++operators > MAX_OPERATORS) tooManyOperators(at);
  };
  for (let i = 0; i < query.length; i++) {
    const c = query[i];
    if (c === '(' || c === '[' || c === '{') {
      if (!quote && ++depth > MAX_NESTING) tooDeep(i);
      if (!quote && c !== '(') inside++;
    } else if ((c === ')' || c === ']' || c === '}') && !quote && depth > 0) {
      depth--;
      if (c !== ')' && inside > 0) inside--;
    } else if (!quote && inside === 0 && OPERATOR_CHARS.has(c as string)) {
      // `==` and `!=` once (at their `=`), `<=` and `>=` once (at their first character).
      if (c !== '=' || query[i - 1] === '=' || query[i - 1] === '!') operator(i);
    }
    if (quote) {
      out += c;
      if (c === '\\' && quote !== '`') out += query[++i] ?? '';
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      quote = c;
      out += c;
      continue;
    }
    if (c === '#') {
      // A comment, to the end of its line: its quotes open no string.
      const end = query.indexOf('\n', i);
      const to = end < 0 ? query.length : end;
      out += query.slice(i, to);
      i = to - 1;
      continue;
    }
    if (c >= '0' && c <= '9' && (i === 0 || !/[\w:.]/.test(query[i - 1] as string))) {
      GO_NUMBER.lastIndex = i;
      const number = GO_NUMBER.exec(query);
      if (number) {
        const [text, digits, exponent] = number;
        out += digits === undefined ? '0x' : (digits + (exponent ?? '')).padEnd(text.length);
        i += text.length - 1;
        continue;
      }
    }
    // A word is read once, from its start: matching at every position of a long run of letters
    // would cost the square of its length.
    if (i === 0 || !/[\w:]/.test(query[i - 1] as string)) {
      WORD.lastIndex = i;
      const word = WORD.exec(query)?.[0];
      if (word) {
        CALL.lastIndex = i + word.length;
        const call = CALL.test(query);
        if (!call && inside === 0 && WORD_OPERATORS.has(word)) operator(i);
        out += call ? (RENAMED_FOR_GRAMMAR[word] ?? word) : word;
        i += word.length - 1;
        continue;
      }
    }
    out += c;
  }
  return out;
}

const MAX_INT64 = 2n ** 63n - 1n;

const BINARY_OPS: Record<string, BinaryOp> = {
  Pow: '^',
  Mul: '*',
  Div: '/',
  Mod: '%',
  Atan2: 'atan2',
  Add: '+',
  Sub: '-',
  Eql: '==',
  Neq: '!=',
  Gtr: '>',
  Lss: '<',
  Gte: '>=',
  Lte: '<=',
  And: 'and',
  Or: 'or',
  Unless: 'unless',
};

const MATCH_OPS: Record<string, MatchType> = { EqlSingle: '=', Neq: '!=', EqlRegex: '=~', NeqRegex: '!~' };

// Go's float64(math.MaxInt64), the bound Prometheus checks `@` timestamps (in seconds) against.
const MAX_INT64_FLOAT = 2 ** 63;

/** The longest duration Go holds (int64 nanoseconds), in seconds, as Prometheus bounds a literal. */
const MAX_DURATION_SECONDS = 2 ** 63 / 1e9;

/** A duration written with units (`5m`, `1h30m`, `250ms`), not a plain number. */
const HAS_UNIT = /^[0-9]+(ms|[smhdwy])/;

type SyntaxNode = ReturnType<typeof lezerParser.parse>['topNode'];

class Converter {
  /** The query as lezer reads it (forGrammar): numbers are read from it, all else from the query. */
  private grammarText = '';

  constructor(private readonly query: string) {}

  parse(): Expr {
    // Nothing but spaces and comments: said as Prometheus says it, before lezer calls it an end.
    if (this.query.replace(/#[^\n]*/g, '').trim() === '') this.fail(0, 'no expression found in input');
    this.grammarText = forGrammar(
      this.query,
      (at) => this.fail(at, `the query nests more than ${MAX_NESTING} brackets deep`),
      (at) => this.fail(at, `the query has more than ${MAX_OPERATORS} binary operators`),
    );
    const tree = parseTree(this.grammarText);
    const top = tree.topNode;
    const children = this.children(top);
    if (children.length === 0) this.fail(0, 'no expression found in input');
    this.checkSyntax(top);
    // What the grammar takes and Prometheus' lexer or brackets do not (`x[-5m]`, `x[5m + 1m]`).
    const { lexemes, error } = lex(this.query);
    this.failAtFirst([error, bracketProblem(lexemes)], Infinity);
    const expr = this.expr(children[0]);
    return expr;
  }

  private fail(position: number | PositionRange, message: string): never {
    const pos = typeof position === 'number' ? { start: position, end: position } : position;
    throw new BadDataError(parseErrorMessage(this.query, pos.start, message), pos);
  }

  private text(node: SyntaxNode): string {
    return this.query.slice(node.from, node.to);
  }

  private pos(node: SyntaxNode): PositionRange {
    return { start: node.from, end: node.to };
  }

  private children(node: SyntaxNode): SyntaxNode[] {
    const out: SyntaxNode[] = [];
    for (let c = node.firstChild; c; c = c.nextSibling) if (c.name !== 'LineComment') out.push(c);
    return out;
  }

  /** The first syntax error lezer recovered from, reported where it happened. */
  private checkSyntax(top: SyntaxNode): void {
    const cursor = top.cursor();
    do {
      if (!cursor.type.isError) continue;
      const node = cursor.node;
      const prev = node.prevSibling;
      const rest = this.query.slice(node.from);
      if (rest.startsWith('(') && prev?.name === 'Identifier') {
        this.fail(prev.from, `unknown function with name ${JSON.stringify(this.text(prev))}`);
      }
      const token = /^\s*(\S+)/.exec(node.from === node.to ? rest : this.text(node))?.[1];
      // Prometheus' lexer runs ahead of its parser: what it stops at before the token the grammar
      // stopped at (a string it cannot close, the end of input inside brackets) is the error.
      const { lexemes, error } = lex(this.query);
      this.failAtFirst([error, bracketProblem(lexemes)], token === undefined ? Infinity : node.from);
      if (token === undefined) this.fail(node.from, `unexpected end of input${endContext(lexemes)}`);
      const found = unexpectedToken(lexemes, node.from);
      if (found) this.fail(found.at, found.message);
      this.fail(node.from, `unexpected ${JSON.stringify(token.length > 20 ? token.slice(0, 20) : token)}`);
    } while (cursor.next());
  }

  /** Fails with the first of `problems` the parser meets at or before `limit`, if any. */
  private failAtFirst(problems: ReadonlyArray<SyntaxProblem | undefined>, limit: number): void {
    let first: SyntaxProblem | undefined;
    for (const p of problems) if (p && p.token <= limit && (!first || p.token < first.token)) first = p;
    if (first) this.fail(first.at, first.message);
  }

  private expr(node: SyntaxNode): Expr {
    switch (node.name) {
      case 'ParenExpr': {
        const [inner] = this.children(node);
        return { kind: 'paren', expr: this.expr(inner), pos: this.pos(node) };
      }
      case 'NumberDurationLiteral':
        return { kind: 'number', value: this.number(node, true), pos: this.pos(node) };
      case 'StringLiteral':
        return { kind: 'string', value: this.unquote(node), pos: this.pos(node) };
      case 'VectorSelector':
        return this.vectorSelector(node);
      case 'MatrixSelector':
      case 'SubqueryExpr':
      case 'OffsetExpr':
      case 'StepInvariantExpr':
        return this.postfix(node, this.children(node)[0]);
      case 'FunctionCall':
        return this.call(node);
      case 'AggregateExpr':
        return this.aggregate(node);
      case 'BinaryExpr':
        return this.binary(node);
      case 'UnaryExpr':
        return this.unary(node);
      case 'AnchoredExpr':
      case 'SmoothedExpr':
        return this.fail(
          this.pos(node),
          `the ${node.name === 'AnchoredExpr' ? 'anchored' : 'smoothed'} modifier is not supported`,
        );
      default:
        return this.fail(this.pos(node), `unexpected ${JSON.stringify(this.text(node))}`);
    }
  }

  /**
   * Prometheus's number rules: `0x1f`, `010` (octal), `1e3`, `.5`, `5.`, `Inf`, `NaN`; no `1_000`.
   * Where an expression or an `@` takes a number, a duration is one too, in seconds (`time() - 1h`,
   * `x > 2s`, `x @ 1h`), as Prometheus 2.54 and later read it.
   */
  private number(node: SyntaxNode, durations = false): number {
    const raw = this.grammarText.slice(node.from, node.to);
    let sign = 1;
    let body = raw.trim();
    if (body.startsWith('-') || body.startsWith('+')) {
      if (body.startsWith('-')) sign = -1;
      body = body.slice(1).trim();
    }
    if (durations && HAS_UNIT.test(body)) return (sign * this.unitDuration(node, body)) / 1000;
    const lower = body.toLowerCase();
    if (lower === 'inf') return sign * Infinity;
    if (lower === 'nan') return NaN;
    // Prometheus's lexer ends a number at an underscore, which is then out of place.
    const underscore = body.indexOf('_');
    if (underscore >= 0)
      this.fail(
        this.pos(node),
        `bad number or duration syntax: ${JSON.stringify(body.slice(0, underscore))}`,
      );
    // Written with a point after it (`010.`, read as `010` here: forGrammar), it is decimal.
    const pointed = this.query[node.to] === '.' && this.grammarText[node.to] === ' ';
    let value: number;
    // Integers are read as Go's ParseInt reads them, up to int64; past it, as ParseFloat would read
    // the same text: an octal-looking one as decimal, a hex one not at all.
    const int64 = (text: string) => BigInt(text) <= MAX_INT64;
    if (/^0x[0-9a-f]+$/.test(lower)) {
      if (!int64(lower))
        this.fail(
          this.pos(node),
          `error parsing number: strconv.ParseFloat: parsing ${JSON.stringify(body)}: invalid syntax`,
        );
      value = Number(lower);
    } else if (/^0[0-7]+$/.test(lower) && !pointed && int64(`0o${lower.slice(1)}`))
      value = parseInt(lower, 8);
    else if (/^([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?$/.test(lower)) value = Number(lower);
    else return this.fail(this.pos(node), `unexpected duration ${JSON.stringify(body)}, expected a number`);
    if (Number.isNaN(value)) this.fail(this.pos(node), `error parsing number: ${JSON.stringify(body)}`);
    if (!Number.isFinite(value)) {
      // Past the largest double (1e400): Go's ParseFloat says so rather than give an infinity.
      const start = this.pos(node).start + raw.trimEnd().length - body.length;
      this.fail(
        { start, end: start + body.length },
        `error parsing number: strconv.ParseFloat: parsing ${JSON.stringify(body)}: value out of range`,
      );
    }
    return sign * value;
  }

  /**
   * Go's unquoting rules for "…", '…' and `…` strings, with Prometheus's lexer's errors (at the
   * string's start). Escapes stand for bytes (`\xe2\x82\xac` is "€"), so the string is read as
   * UTF-8 bytes and decoded as Go prints them: a byte that starts no valid sequence is U+FFFD.
   */
  private unquote(node: SyntaxNode): string {
    const raw = this.text(node);
    const quote = raw[0];
    if (raw.length < 2 || raw[raw.length - 1] !== quote) this.fail(node.from, 'unterminated quoted string');
    const body = raw.slice(1, -1);
    if (quote === '`') return body.replace(/\r/g, '');
    if (!body.includes('\\')) {
      const at = body.indexOf(quote as string);
      if (at >= 0) this.fail(node.from + at + 1, 'unexpected quote in string');
      return body;
    }
    const bytes: number[] = [];
    const text = (chars: string) => {
      for (const byte of Buffer.from(chars, 'utf8')) bytes.push(byte);
    };
    for (let i = 0; i < body.length; i++) {
      const c = body[i] as string;
      if (c !== '\\') {
        if (c === quote) this.fail(node.from + i + 1, 'unexpected quote in string');
        // A character and its surrogate pair's second half go together.
        const code = body.codePointAt(i) as number;
        if (code > 0xffff) i++;
        text(String.fromCodePoint(code));
        continue;
      }
      const e = body[++i] ?? '';
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined || e === quote) {
        bytes.push(simple ?? (e.charCodeAt(0) as number));
        continue;
      }
      const [digits, base, max] =
        e === 'x'
          ? [2, 16, 0xff]
          : e === 'u'
            ? [4, 16, 0x10ffff]
            : e === 'U'
              ? [8, 16, 0x10ffff]
              : [3, 8, 0xff];
      if (base === 8) {
        if (!/[0-7]/.test(e)) this.fail(node.from, `unknown escape sequence ${goRune(body, i)}`);
        i--; // the first octal digit is the escape's own
      }
      let value = 0;
      for (let k = 0; k < digits; k++) {
        const digit = parseInt(body[++i] ?? '', base);
        if (Number.isNaN(digit)) {
          // Past the body, the character met is the closing quote.
          this.fail(
            node.from,
            `illegal character ${i < body.length ? goRune(body, i) : goRune(raw, raw.length - 1)} in escape sequence`,
          );
        }
        value = value * base + digit;
      }
      if (value > max || (value >= 0xd800 && value < 0xe000))
        this.fail(node.from, 'escape sequence is an invalid Unicode code point');
      if (e === 'u' || e === 'U') text(String.fromCodePoint(value));
      else bytes.push(value);
    }
    return goUtf8(bytes);
  }

  private vectorSelector(node: SyntaxNode): VectorSelector {
    let name: string | undefined;
    const matchers: Matcher[] = [];
    for (const c of this.children(node)) {
      if (c.name === 'Identifier') {
        name = this.text(c);
        // An operator spelt as a word is no metric name to Prometheus' lexer.
        if (name.toLowerCase() === 'atan2') this.fail(this.pos(c), `unexpected <op:${name}>`);
      } else if (c.name === 'LabelMatchers') {
        for (const m of this.children(c)) {
          if (m.name !== 'UnquotedLabelMatcher')
            this.fail(this.pos(m), 'quoted label names are not supported');
          const [labelNode, opNode, valueNode] = this.children(m);
          const type = MATCH_OPS[this.children(opNode)[0]?.name ?? ''];
          if (!type || !valueNode)
            this.fail(this.pos(m), `unexpected ${JSON.stringify(this.text(m))} in label matching`);
          const matcher: Matcher = { type, name: this.text(labelNode), value: this.unquote(valueNode) };
          this.checkMatcher(matcher, m);
          matchers.push(matcher);
        }
      }
    }
    const pos = this.pos(node);
    if (name !== undefined) {
      const twice = matchers.find((m) => m.name === METRIC_NAME);
      if (twice)
        this.fail(
          pos,
          `metric name must not be set twice: ${JSON.stringify(name)} or ${JSON.stringify(twice.value)}`,
        );
      matchers.push({ type: '=', name: METRIC_NAME, value: name });
    } else if (!matchers.some((m) => !compileMatcher(m).matches(''))) {
      this.fail(pos, 'vector selector must contain at least one non-empty matcher');
    }
    return { kind: 'vector_selector', name, matchers, offsetMs: 0, pos };
  }

  private checkMatcher(matcher: Matcher, node: SyntaxNode): void {
    try {
      compileMatcher(matcher);
    } catch (e) {
      this.fail(this.pos(node), `error parsing regexp: ${(e as Error).message}`);
    }
  }

  /**
   * A duration with units (`1h30m`), in milliseconds. Prometheus refuses one of zero (`0s`) wherever
   * it stands, in an expression (`x > 0s`) or an `@` as in a range or `offset`; the number `0` is
   * read by the number rules instead (`offset 0` is no offset).
   */
  private unitDuration(node: SyntaxNode, text: string): number {
    let ms: number;
    try {
      ms = parseDuration(text);
    } catch (e) {
      return this.fail(this.pos(node), (e as Error).message);
    }
    if (ms === 0) this.fail(this.pos(node), 'duration must be greater than 0');
    return ms;
  }

  private durationOf(node: SyntaxNode | undefined, context: string): number {
    if (!node) return this.fail(this.query.length, `unexpected end of input in ${context}`);
    const kids = this.children(node);
    if (node.name === 'NumberDurationLiteralInDurationContext') {
      const text = this.text(node);
      if (HAS_UNIT.test(text)) return this.unitDuration(node, text);
      // A number is seconds, read by the number rules (`[.5]`, `[1e1]`, `[0x10]`, `[010]` is 8 s)
      // and cut to whole milliseconds, as Prometheus 2.54 and later read it; past what Go's
      // nanosecond durations hold, out of range.
      const seconds = this.number(node);
      if (!(Math.abs(seconds) <= MAX_DURATION_SECONDS))
        return this.fail(this.pos(node), 'duration out of range');
      return Math.trunc(seconds * 1000) || 0; // never -0
    }
    if ((node.name === 'DurationExpr' || node.name === 'OffsetDurationExpr') && kids.length === 1) {
      return this.durationOf(kids[0], context);
    }
    if (node.name === 'OffsetDurationExpr' && kids.length === 2 && kids[0].name === 'UnaryOp') {
      const sign = this.text(kids[0]) === '-' ? -1 : 1;
      return sign * this.durationOf(kids[1], context);
    }
    return this.fail(this.pos(node), `duration expressions are not supported in ${context}`);
  }

  private positiveDuration(node: SyntaxNode | undefined, context: string): number {
    const ms = this.durationOf(node, context);
    if (ms <= 0) this.fail(node ? this.pos(node) : this.query.length, 'duration must be greater than 0');
    return ms;
  }

  /**
   * `[range]`, `[range:step]`, `offset` and `@` bind tighter than any operator in PromQL, but the
   * grammar attaches them to a whole binary or unary expression on their left (`a - b offset 5m`
   * comes as `(a - b) offset 5m`). They are moved onto the rightmost operand, where they belong.
   */
  private postfix(node: SyntaxNode, target: SyntaxNode): Expr {
    if (target.name === 'BinaryExpr') return this.binary(target, (rhs) => this.postfix(node, rhs));
    if (target.name === 'UnaryExpr') return this.unary(target, (operand) => this.postfix(node, operand));
    switch (node.name) {
      case 'MatrixSelector':
        return this.matrixSelector(node, target);
      case 'SubqueryExpr':
        return this.subquery(node, target);
      case 'OffsetExpr':
        return this.offset(node, target);
      default:
        return this.at(node, target);
    }
  }

  private matrixSelector(node: SyntaxNode, inner: SyntaxNode): MatrixSelector {
    const range = this.children(node)[1];
    const selector = this.expr(inner);
    const bracket = { start: this.query.indexOf('[', inner.to), end: node.to };
    if (selector.kind !== 'vector_selector')
      return this.fail(bracket, 'ranges only allowed for vector selectors');
    if (selector.offsetMs !== 0) this.fail(bracket, 'no offset modifiers allowed before range');
    if (selector.at) this.fail(bracket, 'no @ modifiers allowed before range');
    return {
      kind: 'matrix_selector',
      selector,
      rangeMs: this.positiveDuration(range, 'range'),
      pos: this.pos(node),
    };
  }

  private subquery(node: SyntaxNode, inner: SyntaxNode): SubqueryExpr {
    const [, range, step] = this.children(node);
    const expr = this.expr(inner);
    const type = typeOf(expr);
    if (type !== 'vector')
      this.fail(this.pos(node), `subquery is only allowed on instant vector, got ${type} instead`);
    return {
      kind: 'subquery',
      expr,
      rangeMs: this.positiveDuration(range, 'subquery range'),
      stepMs: step ? this.positiveDuration(step, 'subquery step') : 0,
      offsetMs: 0,
      pos: this.pos(node),
    };
  }

  /** The node an `offset` or `@` modifies: a selector or a subquery, never a parenthesis. */
  private modifiable(expr: Expr, node: SyntaxNode, what: string): VectorSelector | SubqueryExpr {
    if (expr.kind === 'vector_selector' || expr.kind === 'subquery') return expr;
    if (expr.kind === 'matrix_selector') return expr.selector;
    return this.fail(
      this.pos(node),
      `${what} modifier must be preceded by an instant vector selector or range vector selector or a subquery`,
    );
  }

  private offset(node: SyntaxNode, targetNode: SyntaxNode): Expr {
    const kids = this.children(node);
    const expr = this.expr(targetNode);
    const target = this.modifiable(expr, node, 'offset');
    const ms = this.durationOf(kids[2], 'offset');
    if (target.offsetMs !== 0) this.fail(this.pos(node), 'offset may not be set multiple times');
    target.offsetMs = ms;
    return expr;
  }

  private at(node: SyntaxNode, targetNode: SyntaxNode): Expr {
    const kids = this.children(node);
    const expr = this.expr(targetNode);
    const target = this.modifiable(expr, node, '@');
    if (target.at) this.fail(this.pos(node), '@ <timestamp> may not be set multiple times');
    const value = kids[2];
    let at: AtModifier;
    if (value?.name === 'AtModifierPreprocessors') {
      at = this.children(value)[0]?.name === 'AtStart' ? { kind: 'start' } : { kind: 'end' };
    } else if (value?.name === 'NumberDurationLiteral') {
      const seconds = this.number(value, true);
      if (!Number.isFinite(seconds) || seconds >= MAX_INT64_FLOAT || seconds <= -MAX_INT64_FLOAT) {
        this.fail(this.pos(node), `timestamp out of bounds for @ modifier: ${formatGoFixed(seconds)}`);
      }
      at = { kind: 'timestamp', ms: Math.round(seconds * 1000) };
    } else {
      return this.fail(this.pos(node), 'unexpected "@", expected timestamp');
    }
    target.at = at;
    return expr;
  }

  private expectType(expr: Expr, want: ValueType, context: string): void {
    const got = typeOf(expr);
    if (got !== want) {
      this.fail(expr.pos, `expected type ${documentedType(want)} in ${context}, got ${documentedType(got)}`);
    }
  }

  private call(node: SyntaxNode): Expr {
    const [ident, body] = this.children(node);
    const name = this.text(ident);
    const func = FUNCTIONS.get(name);
    if (!func) return this.fail(this.pos(ident), `unknown function with name ${JSON.stringify(name)}`);
    const args = this.children(body).map((a) => this.expr(a));
    const pos = this.pos(node);
    const nargs = func.argTypes.length;
    if (func.variadic === 0) {
      if (nargs !== args.length)
        this.fail(
          pos,
          `expected ${nargs} argument(s) in call to ${JSON.stringify(name)}, got ${args.length}`,
        );
    } else {
      const min = nargs - 1;
      if (min > args.length) {
        this.fail(
          pos,
          `expected at least ${min} argument(s) in call to ${JSON.stringify(name)}, got ${args.length}`,
        );
      } else if (func.variadic > 0 && min + func.variadic < args.length) {
        this.fail(
          pos,
          `expected at most ${min + func.variadic} argument(s) in call to ${JSON.stringify(name)}, got ${args.length}`,
        );
      }
    }
    args.forEach((arg, i) => {
      const t = func.argTypes[Math.min(i, nargs - 1)];
      this.expectType(arg, t, `call to function ${JSON.stringify(name)}`);
    });
    return { kind: 'call', func, args, pos };
  }

  /** `by (...)`, `on (...)`: label names, where Prometheus' lexer reads `inf`, `nan` and `without` as no label. */
  private groupingLabels(node: SyntaxNode): string[] {
    return this.children(node).map((l) => {
      if (l.name !== 'LabelName') this.fail(this.pos(l), 'quoted label names are not supported');
      const label = this.text(l);
      const lower = label.toLowerCase();
      if (lower === 'inf' || lower === 'nan')
        this.fail(this.pos(l), `unexpected number ${JSON.stringify(label)} in grouping opts, expected label`);
      if (lower === 'without')
        this.fail(this.pos(l), `unexpected <${label}> in grouping opts, expected label`);
      return label;
    });
  }

  private aggregate(node: SyntaxNode): AggregateExpr {
    const kids = this.children(node);
    const opNode = kids.find((k) => k.name === 'AggregateOp') ?? kids[0];
    const op = this.text(opNode).toLowerCase();
    if (!AGGREGATE_OPS.has(op))
      this.fail(this.pos(opNode), `unknown function with name ${JSON.stringify(op)}`);
    const modifier = kids.find((k) => k.name === 'AggregateModifier');
    let grouping: string[] = [];
    let without = false;
    if (modifier) {
      const [kw, labels] = this.children(modifier);
      without = kw.name === 'Without';
      grouping = this.groupingLabels(labels);
    }
    const body = kids.find((k) => k.name === 'FunctionCallBody') ?? kids[kids.length - 1];
    const args = this.children(body).map((a) => this.expr(a));
    const pos = this.pos(node);
    if (args.length === 0) this.fail(pos, 'no arguments for aggregate expression provided');
    const withParam = op === 'topk' || op === 'bottomk' || op === 'quantile' || op === 'count_values';
    const desired = withParam ? 2 : 1;
    if (args.length !== desired) {
      this.fail(
        pos,
        `wrong number of arguments for aggregate expression provided, expected ${desired}, got ${args.length}`,
      );
    }
    const expr = args[desired - 1];
    this.expectType(expr, 'vector', 'aggregation expression');
    const param = withParam ? args[0] : undefined;
    if (param) this.expectType(param, op === 'count_values' ? 'string' : 'scalar', 'aggregation parameter');
    return { kind: 'aggregate', op: op as AggregateOp, expr, param, grouping, without, pos };
  }

  private binary(node: SyntaxNode, rhsOf?: (rhs: SyntaxNode) => Expr): Expr {
    const kids = this.children(node);
    const lhsNode = kids[0];
    const rhsNode = kids[kids.length - 1];
    const opNode = kids[1];
    const op = BINARY_OPS[opNode.name];
    const opRange = this.pos(opNode);
    if (!op)
      return this.fail(
        opRange,
        `binary expression does not support operator ${JSON.stringify(this.text(opNode))}`,
      );
    const middle = kids.slice(2, -1);
    if (middle.some((k) => k.name === 'FillModifier')) this.fail(opRange, 'fill modifiers are not supported');
    const returnBool = middle.some((k) => k.name === 'BoolModifier');
    const clause = middle.find((k) => k.name === 'MatchingModifierClause');
    let card: Cardinality = 'one-to-one';
    let on = false;
    let labels: string[] = [];
    let include: string[] = [];
    if (clause) {
      const parts = this.children(clause);
      on = parts[0].name === 'On';
      labels = this.groupingLabels(parts[1]);
      if (parts[2]) {
        card = parts[2].name === 'GroupLeft' ? 'many-to-one' : 'one-to-many';
        if (parts[3]) include = this.groupingLabels(parts[3]);
      }
    }

    // `-2 ^ 2` is -(2 ^ 2) in PromQL: a sign binds looser than `^`.
    let lhs: Expr;
    let negateResult = false;
    if (op === '^' && lhsNode.name === 'NumberDurationLiteral' && /^\s*[-+]/.test(this.text(lhsNode))) {
      const value = this.number(lhsNode, true);
      negateResult = this.text(lhsNode).trim().startsWith('-');
      lhs = { kind: 'number', value: Math.abs(value), pos: this.pos(lhsNode) };
    } else {
      lhs = this.expr(lhsNode);
    }
    const rhs = rhsOf ? rhsOf(rhsNode) : this.expr(rhsNode);
    const lt = typeOf(lhs);
    const rt = typeOf(rhs);
    const pos = this.pos(node);

    if (returnBool && !isComparisonOp(op))
      this.fail(opRange, 'bool modifier can only be used on comparison operators');
    if (isComparisonOp(op) && !returnBool && lt === 'scalar' && rt === 'scalar') {
      this.fail(opRange, 'comparisons between scalars must use BOOL modifier');
    }
    if (isSetOp(op) && card === 'one-to-one') card = 'many-to-many';
    if (on) {
      for (const l of labels) {
        if (include.includes(l))
          this.fail(opRange, `label ${JSON.stringify(l)} must not occur in ON and GROUP clause at once`);
      }
    }
    if (lt !== 'scalar' && lt !== 'vector')
      this.fail(lhs.pos, 'binary expression must contain only scalar and instant vector types');
    if (rt !== 'scalar' && rt !== 'vector')
      this.fail(rhs.pos, 'binary expression must contain only scalar and instant vector types');
    let matching: BinaryExpr['matching'];
    if (lt !== 'vector' || rt !== 'vector') {
      if (labels.length > 0) this.fail(pos, 'vector matching only allowed between instant vectors');
    } else {
      if (isSetOp(op)) {
        if (card === 'one-to-many' || card === 'many-to-one')
          this.fail(pos, `no grouping allowed for ${JSON.stringify(op)} operation`);
      }
      matching = { card, on, labels, include };
    }
    if ((lt === 'scalar' || rt === 'scalar') && isSetOp(op)) {
      this.fail(pos, `set operator ${JSON.stringify(op)} not allowed in binary scalar expression`);
    }
    const result: BinaryExpr = { kind: 'binary', op, lhs, rhs, returnBool, matching, pos };
    return negateResult ? { kind: 'unary', op: '-', expr: result, pos } : result;
  }

  private unary(node: SyntaxNode, operandOf?: (operand: SyntaxNode) => Expr): Expr {
    const [opNode, inner] = this.children(node);
    const op = this.text(opNode) === '-' ? '-' : '+';
    const expr = operandOf ? operandOf(inner) : this.expr(inner);
    const t = typeOf(expr);
    if (t !== 'scalar' && t !== 'vector') {
      this.fail(
        this.pos(node),
        `unary expression only allowed on expressions of type scalar or instant vector, got ${JSON.stringify(documentedType(t))}`,
      );
    }
    if (expr.kind === 'number')
      return { ...expr, value: op === '-' ? -expr.value : expr.value, pos: this.pos(node) };
    return { kind: 'unary', op, expr, pos: this.pos(node) };
  }
}

/** The bytes Go's simple escapes stand for. */
const SIMPLE_ESCAPES: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 92 };

/** The character at `i` as Go's `%#U` prints it: `U+0064 'd'` (the quotes only when printable). */
function goRune(text: string, i: number): string {
  const code = text.codePointAt(i) as number;
  const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  return /[\p{L}\p{M}\p{N}\p{P}\p{S} ]/u.test(String.fromCodePoint(code))
    ? `${hex} '${String.fromCodePoint(code)}'`
    : hex;
}

/**
 * UTF-8 bytes as text, as Go's encoding/json prints a string: each byte that starts no valid
 * sequence (a stray continuation, an overlong or surrogate form, a cut sequence) is U+FFFD.
 */
function goUtf8(bytes: readonly number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const first = bytes[i] as number;
    if (first < 0x80) {
      out += String.fromCharCode(first);
      i++;
      continue;
    }
    const [more, min, bits] =
      first >= 0xc2 && first <= 0xdf
        ? [1, 0x80, first & 0x1f]
        : first >= 0xe0 && first <= 0xef
          ? [2, 0x800, first & 0x0f]
          : first >= 0xf0 && first <= 0xf4
            ? [3, 0x10000, first & 0x07]
            : [0, 0, 0];
    let code = bits;
    let valid = more > 0;
    for (let k = 1; valid && k <= more; k++) {
      const next = bytes[i + k];
      if (next === undefined || (next & 0xc0) !== 0x80) valid = false;
      else code = (code << 6) | (next & 0x3f);
    }
    if (!valid || code < min || code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) {
      out += '\ufffd';
      i++;
      continue;
    }
    out += String.fromCodePoint(code);
    i += more + 1;
  }
  return out;
}
