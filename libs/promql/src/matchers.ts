import { type Labels, getLabel } from './labels';
import { compileAnchoredRegex, RegexSyntaxError } from './re2';

export type MatchType = '=' | '!=' | '=~' | '!~';

/** A label matcher as written in a selector; a missing label matches as the empty string. */
export interface Matcher {
  readonly type: MatchType;
  readonly name: string;
  readonly value: string;
}

export type CompiledMatcher = Matcher & { matches(value: string): boolean };

/** Compiles a matcher; an invalid regular expression throws `RegexSyntaxError`. */
export function compileMatcher(m: Matcher): CompiledMatcher {
  let matches: (value: string) => boolean;
  switch (m.type) {
    case '=':
      matches = (v) => v === m.value;
      break;
    case '!=':
      matches = (v) => v !== m.value;
      break;
    case '=~': {
      const test = anchoredTest(m.value);
      matches = (v) => test(v);
      break;
    }
    case '!~': {
      const test = anchoredTest(m.value);
      matches = (v) => !test(v);
      break;
    }
  }
  return { type: m.type, name: m.name, value: m.value, matches };
}

/**
 * Whether a value matches the whole pattern. A list of literal values (`a|b\\.c`: Grafana's
 * multi-value variables, thousands of hosts at times) is a set lookup: compiling it as a regular
 * expression took V8 two seconds for 200,000 of them.
 */
function anchoredTest(pattern: string): (value: string) => boolean {
  const known = compiled.get(pattern);
  if (known) {
    // Most recently used last: the oldest is the first let go.
    compiled.delete(pattern);
    compiled.set(pattern, known);
    return known;
  }
  let test: (value: string) => boolean;
  const values = literalAlternatives(withoutEnclosingGroup(pattern));
  if (values) {
    const set = new Set(values);
    test = (v) => set.has(v);
  } else {
    if (pattern.length > MAX_REGEX_CHARS)
      throw new RegexSyntaxError(
        `regular expression longer than ${MAX_REGEX_CHARS} characters (only a list of literal values may be longer)`,
      );
    const re = compileAnchoredRegex(pattern);
    test = (v) => re.test(v);
  }
  compiled.set(pattern, test);
  compiledChars += pattern.length;
  for (const [oldest] of compiled) {
    if (compiled.size <= MAX_COMPILED && compiledChars <= MAX_COMPILED_CHARS) break;
    compiled.delete(oldest);
    compiledChars -= oldest.length;
  }
  return test;
}

/**
 * The longest regular expression taken that is not a list of literal values (which any length
 * may be: a set lookup). A pattern of 60,000 alternatives such as `.*h1.*` took 2 s to compile and
 * 12 ms to test one value, on the one thread that serves every request; 16 Ki characters, as any
 * hand-written selector is, cost a few ms.
 */
export const MAX_REGEX_CHARS = 16_384;

/**
 * Patterns compiled lately, most recent last: a query's matchers are compiled when the route
 * checks it, when the engine parses it and when its series are found, and dashboards repeat their
 * queries. Bounded by count and by characters.
 */
const compiled = new Map<string, (value: string) => boolean>();
let compiledChars = 0;
const MAX_COMPILED = 512;
const MAX_COMPILED_CHARS = 16 * 1024 * 1024;

export function matchesAll(matchers: readonly CompiledMatcher[], labels: Labels): boolean {
  for (const m of matchers) if (!m.matches(getLabel(labels, m.name))) return false;
  return true;
}

const REGEX_META = new Set([...'\\.+*?()|[]{}^$']);

/**
 * The values a matcher can only match, when it names them: `a` for `="a"`, `a`, `b` for
 * `=~"a|b"` or `=~"(a|b\\.c)"` (Grafana's multi-value variables); null for any other matcher
 * (negative ones, patterns with classes or repetition, an alternative that is empty and so
 * matches a missing label). What the pattern is read as is checked against the matcher itself.
 */
export function setMatches(m: CompiledMatcher): string[] | null {
  if (m.type === '=') return m.value === '' ? null : [m.value];
  if (m.type !== '=~') return null;
  const values = literalAlternatives(withoutEnclosingGroup(m.value));
  if (!values || values.some((v) => !m.matches(v))) return null;
  return [...new Set(values)];
}

/**
 * `a|b` for `(a|b)` or `(?:a|b)`, as Grafana writes a multi-value variable (the same match, whole
 * value against whole pattern); the pattern itself when it is anything else.
 */
function withoutEnclosingGroup(pattern: string): string {
  let bare = pattern;
  for (const open of ['(?:', '(']) {
    const inner = bare.slice(open.length, -1);
    if (bare.startsWith(open) && bare.endsWith(')') && !/[()]/.test(inner)) bare = inner;
  }
  return bare;
}

/**
 * The values a pattern of literal alternatives names (`a|b\\.c`: `a`, `b.c`), or null when it has
 * anything else: a class, a repetition, a group, a flag, an escape that is not punctuation, or an
 * empty alternative (which matches a missing label).
 */
function literalAlternatives(pattern: string): string[] | null {
  const values: string[] = [];
  let current = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '\\') {
      const next = pattern[i + 1];
      if (next === undefined || !/[!-/:-@[-`{-~]/.test(next)) return null; // \d, \Q, a trailing \
      current += next;
      i++;
    } else if (c === '|') {
      values.push(current);
      current = '';
    } else if (REGEX_META.has(c)) {
      return null;
    } else {
      current += c;
    }
  }
  values.push(current);
  return values.some((v) => v === '') ? null : values;
}

/** `name="value"` etc., for messages. */
export function formatMatcher(m: Matcher): string {
  return `${m.name}${m.type}${JSON.stringify(m.value)}`;
}
