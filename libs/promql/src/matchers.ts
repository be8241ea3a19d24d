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

/** `name="value"` etc., for messages. */
export function formatMatcher(m: Matcher): string {
  return `${m.name}${m.type}${JSON.stringify(m.value)}`;
}
