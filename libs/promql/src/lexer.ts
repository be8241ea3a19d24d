/**
 * PromQL's tokens as Prometheus' lexer cuts them, and the errors its lexer and parser give in
 * their own words. The grammar the parser reads a query with (lezer's) recovers from errors at
 * places of its own; what a user is told comes from here, so that a malformed query gets the
 * message Prometheus 2 gives it: the lexer's error where it stops first, else the token the parser
 * did not expect, described as Prometheus describes it, with what the parser was reading.
 */

/** A token: where it starts, and whether within a selector's braces (where keywords are names). */
export interface Lexeme {
  kind: 'identifier' | 'number' | 'duration' | 'string' | 'colon' | 'symbol';
  text: string;
  start: number;
  inBraces: boolean;
}

/**
 * A problem found in the tokens: `token` is where the parser meets it (where the token it stops at
 * starts), `at` where Prometheus reports it.
 */
export interface SyntaxProblem {
  token: number;
  at: number;
  message: string;
}

export interface Lexed {
  /** The tokens before the lexer's error, if any; all of them otherwise. */
  lexemes: Lexeme[];
  error?: SyntaxProblem;
}

const SPACE = new Set([' ', '\t', '\n', '\r']);
const isAlpha = (c: string | undefined) =>
  c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_');
const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isHexDigit = (c: string | undefined) => isDigit(c) || (c !== undefined && /^[a-fA-F]$/.test(c));
const isAlphaNumeric = (c: string | undefined) => isAlpha(c) || isDigit(c);

/**
 * Cuts `query` into tokens as Prometheus' lexer does, up to its first error: a string left open,
 * a character no token starts with (outside braces or inside them), a `!` without `=`, a closer
 * without its opener, a number or duration it cannot read, a second colon (or a letter, which its
 * lexer takes for one) in a subquery's brackets, or the end of input inside braces, parentheses
 * or a bracket. Linear in the query's length.
 */
export function lex(query: string): Lexed {
  const out: Lexeme[] = [];
  let parens = 0;
  let braces = false;
  let bracket = false;
  let gotColon = false;
  /** Where a letter in a subquery's brackets was taken for its colon (the parser meets it there). */
  let letterColon = -1;
  const stop = (at: number, message: string, token = at): Lexed => ({
    lexemes: out,
    error: { token, at, message },
  });
  const push = (kind: Lexeme['kind'], start: number, end: number) =>
    out.push({ kind, text: query.slice(start, end), start, inBraces: braces });

  for (let i = 0; ;) {
    const c = query[i];
    if (c === '#') {
      while (i < query.length && query[i] !== '\n') i++;
      continue;
    }
    if (c === undefined) {
      if (braces) return stop(i, 'unexpected end of input inside braces');
      if (parens > 0) return stop(i, 'unclosed left parenthesis');
      if (bracket) return stop(i, 'unclosed left bracket');
      return { lexemes: out };
    }
    if (SPACE.has(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === '"' || c === "'" || c === '`') {
      for (i++; i < query.length && query[i] !== c; i++) {
        if (c === '`') continue;
        if (query[i] === '\\') i++;
        else if (query[i] === '\n') break;
      }
      if (query[i] !== c)
        return stop(start, c === '`' ? 'unterminated raw string' : 'unterminated quoted string');
      push('string', start, ++i);
      continue;
    }
    if (braces) {
      if (isAlpha(c)) {
        while (isAlphaNumeric(query[i])) i++;
        push('identifier', start, i);
        continue;
      }
      if (c === '!' && query[i + 1] !== '=' && query[i + 1] !== '~')
        return stop(start, `unexpected character after '!' inside braces: ${goRune(query, i + 1)}`);
      if (c === '{') return stop(start, "unexpected left brace '{'");
      if (c !== ',' && c !== '=' && c !== '!' && c !== '}')
        return stop(start, `unexpected character inside braces: ${goRune(query, i)}`);
      i += c === ',' || c === '}' || (c === '=' && query[i + 1] !== '~') ? 1 : 2;
      push('symbol', start, i);
      if (c === '}') braces = false;
      continue;
    }
    if (isDigit(c) || (c === '.' && isDigit(query[i + 1]))) {
      const read = numberOrDuration(query, i, bracket);
      if (typeof read === 'string') return stop(start, read);
      i = read.end;
      push(read.kind, start, i);
      continue;
    }
    if (isAlpha(c) || c === ':') {
      if (!bracket) {
        while (isAlphaNumeric(query[i]) || query[i] === ':') i++;
        push('identifier', start, i);
        continue;
      }
      // Prometheus' lexer reads a letter in a subquery's brackets as the colon it expects there.
      if (gotColon)
        return stop(start, `unexpected colon ${goRune(query, i)}`, letterColon < 0 ? start : letterColon);
      gotColon = true;
      if (c !== ':') letterColon = start;
      push('colon', start, ++i);
      continue;
    }
    switch (c) {
      case '(':
        parens++;
        break;
      case ')':
        if (--parens < 0) return stop(start + 1, "unexpected right parenthesis ')'", start);
        break;
      case '{': // inside braces once it is pushed
        break;
      case '[':
        if (bracket) return stop(start, "unexpected left bracket '['");
        break;
      case ']':
        if (!bracket) return stop(start, "unexpected right bracket ']'");
        bracket = false;
        letterColon = -1;
        break;
      case '!':
        if (query[i + 1] !== '=')
          return stop(start, `unexpected character after '!': ${goRune(query, i + 1)}`);
        i++;
        break;
      case '=':
        if (query[i + 1] === '~') return stop(start, "unexpected character after '=': '~'");
        if (query[i + 1] === '=') i++;
        break;
      case '<':
      case '>':
        if (query[i + 1] === '=') i++;
        break;
      default:
        if (!',*/%+-^@'.includes(c)) return stop(start, `unexpected character: ${goRune(query, i)}`);
    }
    push('symbol', start, ++i);
    if (c === '{') braces = true;
    if (c === '[') {
      // A range or subquery: a duration first, read as such.
      bracket = true;
      gotColon = false;
      while (SPACE.has(query[i] as string)) i++;
      const read = rangeDuration(query, i);
      if (typeof read === 'string') return stop(i, read);
      push(read.kind, i, read.end);
      i = read.end;
    }
  }
}

/** What Go's strconv.IsPrint takes: letters, marks, numbers, punctuation, symbols and the space. */
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/**
 * The character at query[at] as Go's `%q` quotes a rune; the end of input as Go's lexer reads it
 * there (no rune: U+FFFD).
 */
function goRune(query: string, at: number): string {
  const code = query.codePointAt(at);
  if (code === undefined) return "'\uFFFD'";
  const c = String.fromCodePoint(code);
  const escaped: Record<string, string> = {
    '\x07': '\\a',
    '\b': '\\b',
    '\f': '\\f',
    '\n': '\\n',
    '\r': '\\r',
    '\t': '\\t',
    '\v': '\\v',
    '\\': '\\\\',
    "'": "\\'",
  };
  if (escaped[c]) return `'${escaped[c]}'`;
  if (PRINTABLE.test(c)) return `'${c}'`;
  const hex = code.toString(16);
  if (code < 0x80) return `'\\x${hex.padStart(2, '0')}'`;
  return code < 0x10000 ? `'\\u${hex.padStart(4, '0')}'` : `'\\U${hex.padStart(8, '0')}'`;
}

const VALID_DURATION = /^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$/;

/** A number as Prometheus' lexer reads one (Go's scanNumber): where it ends, and whether it is one. */
function scanNumber(query: string, start: number): { end: number; complete: boolean; hex: boolean } {
  let i = start;
  let digit = isDigit;
  if (query[i] === '0' && (query[i + 1] === 'x' || query[i + 1] === 'X')) {
    digit = isHexDigit;
    i += 2;
  }
  while (digit(query[i])) i++;
  if (query[i] === '.') for (i++; digit(query[i]);) i++;
  if ((query[i] === 'e' || query[i] === 'E') && digit === isDigit) {
    i++;
    if (query[i] === '+' || query[i] === '-') i++;
    while (isDigit(query[i])) i++;
  }
  return { end: i, complete: !isAlphaNumeric(query[i]), hex: digit !== isDigit };
}

/** Why Go's ParseFloat refuses a number the lexer took, if it does. */
function unreadableNumber(text: string, hex: boolean): string | undefined {
  if (hex ? text.includes('.') || text.length === 2 : /[eE][+-]?$/.test(text))
    return `error parsing number: strconv.ParseFloat: parsing ${JSON.stringify(text)}: invalid syntax`;
  return undefined;
}

/**
 * The rest of a duration after its first number (Go's acceptRemainingDuration): a unit, then more
 * numbers each with a unit, and nothing alphanumeric after. Where it stops, and whether it read one.
 */
function remainingDuration(query: string, from: number): { end: number; ok: boolean } {
  let d = from;
  if (!/[smhdwy]/.test(query[d] ?? '')) return { end: d, ok: false };
  d++;
  if (query[d] === 's') d++;
  while (isDigit(query[d])) {
    while (isDigit(query[d])) d++;
    if (!/[smhdw]/.test(query[d] ?? '')) return { end: d, ok: false };
    d++;
    if (query[d] === 's') d++;
  }
  if (isAlphaNumeric(query[d])) return { end: d + 1, ok: false };
  return { end: d, ok: true };
}

type Read = { kind: 'number' | 'duration'; end: number } | string;

/**
 * A number or a duration at query[start], as Prometheus' lexer reads it outside a range's first
 * place: where it ends, or the error it stops at. A run that reads as a duration but is none
 * (`1m1m`, `1.5m`) is refused as Prometheus' parser refuses it; one that is neither (`5M`) as its
 * lexer does.
 */
function numberOrDuration(query: string, start: number, inBracket: boolean): Read {
  const number = scanNumber(query, start);
  const text = query.slice(start, number.end);
  if (number.complete) return unreadableNumber(text, number.hex) ?? { kind: 'number', end: number.end };
  return durationAt(
    query,
    start,
    number.end,
    inBracket ? 'bad duration syntax' : 'bad number or duration syntax',
  );
}

/**
 * The duration right after a `[` (Go's lexDuration). Prometheus 2 wants a unit there; a plain
 * number of seconds (`[300]`, as Prometheus 3 reads it) is taken too, and one that is no number
 * (`[]`, `[-5m]`, `[1e]`) lacks its unit as Prometheus 2 says.
 */
function rangeDuration(query: string, start: number): Read {
  const number = scanNumber(query, start);
  if (number.complete) {
    const text = query.slice(start, number.end);
    if (text === '' || text === '.' || unreadableNumber(text, number.hex))
      return 'missing unit character in duration';
    return { kind: 'number', end: number.end };
  }
  return durationAt(query, start, number.end, 'bad duration syntax');
}

/**
 * The duration whose first number runs from `start` to `numberEnd`: where it ends, or why not
 * (`refused`, what the lexer says of a run that is no duration, and Prometheus' parser's words for
 * one it lexed that is none).
 */
function durationAt(query: string, start: number, numberEnd: number, refused: string): Read {
  const rest = remainingDuration(query, numberEnd);
  const read = query.slice(start, rest.end);
  if (!rest.ok) return `${refused}: ${JSON.stringify(read)}`;
  return VALID_DURATION.test(read)
    ? { kind: 'duration', end: rest.end }
    : `not a valid duration string: ${JSON.stringify(read)}`;
}

const OPERATOR_WORDS = new Set(['and', 'or', 'unless', 'atan2']);
const AGGREGATOR_WORDS = new Set(
  'sum avg count min max group stddev stdvar topk bottomk count_values quantile'.split(' '),
);
const KEYWORD_WORDS = new Set('offset by without on ignoring group_left group_right bool'.split(' '));
const OPERATOR_SYMBOLS = new Set('+ - * / % ^ == != < <= > >= =~ !~ @'.split(' '));
const GROUPING_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/** A token as Prometheus' parser names it in an error (Go's Item.desc). */
function describe(l: Lexeme): string {
  const quoted = (text: string) =>
    text.length > 10 ? `${JSON.stringify(text.slice(0, 10))}...` : JSON.stringify(text);
  const lower = l.text.toLowerCase();
  switch (l.kind) {
    case 'identifier':
      if (l.inBraces) return `identifier ${JSON.stringify(l.text)}`;
      if (lower === 'inf' || lower === 'nan') return `number ${quoted(l.text)}`;
      if (OPERATOR_WORDS.has(lower)) return `<op:${l.text}>`;
      if (AGGREGATOR_WORDS.has(lower)) return `<aggr:${l.text}>`;
      if (KEYWORD_WORDS.has(lower)) return `<${l.text}>`;
      if (lower === 'start' || lower === 'end') return JSON.stringify(l.text);
      return `${l.text.includes(':') ? 'metric identifier' : 'identifier'} ${JSON.stringify(l.text)}`;
    case 'number':
    case 'duration':
    case 'string':
      return `${l.kind} ${quoted(l.text)}`;
    default:
      return OPERATOR_SYMBOLS.has(l.text) ? `<op:${l.text}>` : JSON.stringify(l.text);
  }
}

/**
 * The first token a range or subquery's brackets do not take, as Prometheus' grammar says it:
 * `[duration]` or `[duration:]` or `[duration:duration]` and nothing else (numbers of seconds
 * taken for durations, as Prometheus 3 takes them). A letter the lexer took for the colon is
 * refused here: Prometheus 2 reads `x[5m f]` as `x[5m:]`.
 */
export function bracketProblem(lexemes: readonly Lexeme[]): SyntaxProblem | undefined {
  let state: 'outside' | 'open' | 'range' | 'colon' | 'step' = 'outside';
  for (const l of lexemes) {
    const duration = l.kind === 'duration' || l.kind === 'number';
    const close = l.kind === 'symbol' && l.text === ']' && !l.inBraces;
    let expected = '';
    switch (state) {
      case 'outside':
        if (l.kind === 'symbol' && l.text === '[' && !l.inBraces) state = 'open';
        continue;
      case 'open':
        // The lexer reads a duration here or stops.
        if (duration) state = 'range';
        else expected = ' in subquery selector, expected duration';
        break;
      case 'range':
        if (l.kind === 'colon' && l.text !== ':')
          return { token: l.start, at: l.start, message: `unexpected character: '${l.text}', expected ':'` };
        if (l.kind === 'colon') state = 'colon';
        else if (close) state = 'outside';
        else expected = ' in subquery or range, expected ":" or "]"';
        break;
      case 'colon':
        if (duration) state = 'step';
        else if (close) state = 'outside';
        else expected = ' in subquery selector, expected duration or "]"';
        break;
      case 'step':
        if (close) state = 'outside';
        else expected = ' in subquery selector, expected "]"';
        break;
    }
    if (expected) return { token: l.start, at: l.start, message: `unexpected ${describe(l)}${expected}` };
  }
  return undefined;
}

/**
 * The parser's error at the token starting at or after `at`, as Prometheus words it: the token's
 * description, and where its grammar says so, what it was reading and what it expected.
 */
export function unexpectedToken(lexemes: readonly Lexeme[], at: number): SyntaxProblem | undefined {
  const index = lexemes.findIndex((l) => l.start >= at);
  if (index < 0) return undefined;
  const found = lexemes[index] as Lexeme;
  const prev = lexemes[index - 1];
  const prevLower = prev?.text.toLowerCase();
  const problem = (message: string, where = found.start) => ({ token: found.start, at: where, message });
  if (found.text === ')' && prev?.text === ',' && !found.inBraces)
    return problem('trailing commas not allowed in function call args', prev.start);
  let context = '';
  if (found.inBraces && found.text !== '{') {
    if (!prev || prev.text === '{' || prev.text === ',')
      context = ' in label matching, expected identifier or "}"';
    else if (prev.kind === 'identifier') context = ' in label matching, expected label matching operator';
    else if (prev.kind === 'string') context = ' in label matching, expected "," or "}"';
    else if (['=', '!=', '=~', '!~'].includes(prev.text)) context = ' in label matching, expected string';
  } else if (prev?.text === '@') context = ' in @, expected timestamp';
  else if (prevLower === 'offset') context = ' in offset, expected duration';
  else if (prev && !prev.inBraces && prev.kind === 'identifier' && GROUPING_WORDS.has(prevLower ?? ''))
    context = ' in grouping opts, expected "("';
  return problem(`unexpected ${describe(found)}${context}`);
}

/** What Prometheus' grammar adds to an end of input after a token that needs more. */
export function endContext(lexemes: readonly Lexeme[]): string {
  const last = lexemes.at(-1);
  const lower = last?.inBraces ? '' : last?.text.toLowerCase();
  const beforeSign = lexemes.at(-2)?.text.toLowerCase();
  if (lower === 'offset' || ((lower === '-' || lower === '+') && beforeSign === 'offset'))
    return ' in offset, expected duration';
  if (lower === '@') return ' in @, expected timestamp';
  if (lower === 'by' || lower === 'without') return ' in grouping opts, expected "("';
  return '';
}
