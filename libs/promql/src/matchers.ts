import { type Labels, getLabel } from './labels';
import { compileAnchoredRegex } from './re2';

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
      const re = compileAnchoredRegex(m.value);
      matches = (v) => re.test(v);
      break;
    }
    case '!~': {
      const re = compileAnchoredRegex(m.value);
      matches = (v) => !re.test(v);
      break;
    }
  }
  return { type: m.type, name: m.name, value: m.value, matches };
}

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
  let pattern = m.value;
  for (const open of ['(?:', '(']) {
    const inner = pattern.slice(open.length, -1);
    if (pattern.startsWith(open) && pattern.endsWith(')') && !/[()]/.test(inner)) pattern = inner;
  }
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
  if (values.some((v) => v === '' || !m.matches(v))) return null;
  return [...new Set(values)];
}

/** `name="value"` etc., for messages. */
export function formatMatcher(m: Matcher): string {
  return `${m.name}${m.type}${JSON.stringify(m.value)}`;
}
