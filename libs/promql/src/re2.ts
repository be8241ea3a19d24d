/**
 * Prometheus matches regular expressions with Go's RE2 syntax, anchored at both ends. This
 * translates that syntax to a JavaScript RegExp with the same meaning for what label values use:
 * `.` never matches a newline only, `\s` is ASCII space, POSIX classes, `(?i)`/`(?s)` flags at the
 * start, `(?P<name>...)`, `\Q...\E`, `\x{...}`, escaped punctuation. What RE2 rejects (back
 * references, look-around) is rejected here too.
 */

import { RE2JS } from 're2js';

const POSIX_CLASSES: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

// Characters that may be escaped in a JavaScript `u` pattern outside a class.
const JS_SYNTAX = new Set('^$\\.*+?()[]{}|/'.split(''));

export class RegexSyntaxError extends Error {}

/** Syntax RE2 has and the translation does not carry over: the pattern is left to re2js whole. */
class Re2Only extends Error {}

/** The flags of a group RE2 knows: (?i), (?-s), (?im:...), (?U). */
const FLAG_GROUP = /^\(\?([imsU]*(?:-[imsU]+)?)(\)|:)/;

export interface TranslatedRegex {
  source: string;
  flags: string;
}

export function translateRe2(pattern: string): TranslatedRegex {
  let i = 0;
  let ignoreCase = false;
  let dotAll = false;
  // Leading flag groups: (?i), (?s), (?is).
  for (;;) {
    const m = /^\(\?([a-zA-Z]+)\)/.exec(pattern.slice(i));
    if (!m) break;
    for (const f of m[1]) {
      if (f === 'i') ignoreCase = true;
      else if (f === 's') dotAll = true;
      else if (f === 'm' || f === 'U') throw new Re2Only();
      else throw new RegexSyntaxError(`invalid or unsupported Perl syntax: \`(?${f}\``);
    }
    i += m[0].length;
  }

  let out = '';
  let inClass = false;
  let classStart = false;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1];
      if (next === undefined) throw new RegexSyntaxError('trailing backslash at end of expression');
      if (next === 'Q') {
        const end = pattern.indexOf('\\E', i + 2);
        const literal = end < 0 ? pattern.slice(i + 2) : pattern.slice(i + 2, end);
        out += literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end < 0 ? pattern.length : end + 2;
        classStart = false;
        continue;
      }
      if (next === 'A' && !inClass) {
        out += '^';
      } else if (next === 'z' && !inClass) {
        out += '$';
      } else if (next === 's') {
        out += inClass ? '\\t\\n\\f\\r ' : '[\\t\\n\\f\\r ]';
      } else if (next === 'S' && !inClass) {
        out += '[^\\t\\n\\f\\r ]';
      } else if (next === 'x' && pattern[i + 2] === '{') {
        const end = pattern.indexOf('}', i + 3);
        if (end < 0) throw new RegexSyntaxError('invalid escape sequence: `\\x{`');
        out += `\\u{${pattern.slice(i + 3, end)}}`;
        i = end + 1;
        classStart = false;
        continue;
      } else if ((next === 'p' || next === 'P') && pattern[i + 2] !== '{') {
        out += `\\${next}{${pattern[i + 2] ?? ''}}`;
        i += 3;
        classStart = false;
        continue;
      } else if (/[1-9]/.test(next)) {
        throw new RegexSyntaxError(`invalid escape sequence: \`\\${next}\``);
      } else if (/[a-zA-Z0-9]/.test(next)) {
        if (!/[dDwWbBfnrtvpPx0]/.test(next))
          throw new RegexSyntaxError(`invalid escape sequence: \`\\${next}\``);
        out += '\\' + next;
      } else if (JS_SYNTAX.has(next) || (inClass && next === '-')) {
        out += '\\' + next;
      } else {
        // RE2 lets any punctuation be escaped; JavaScript's `u` mode only its syntax characters.
        out += next;
      }
      i += 2;
      classStart = false;
      continue;
    }
    if (inClass) {
      if (c === '[' && pattern[i + 1] === ':') {
        const end = pattern.indexOf(':]', i + 2);
        if (end > 0) {
          let name = pattern.slice(i + 2, end);
          const negated = name.startsWith('^');
          if (negated) name = name.slice(1);
          const cls = POSIX_CLASSES[name];
          if (!cls) throw new RegexSyntaxError(`invalid character class range: \`[:${name}:]\``);
          if (negated) throw new RegexSyntaxError(`unsupported negated class: \`[:^${name}:]\``);
          out += cls;
          i = end + 2;
          classStart = false;
          continue;
        }
      }
      if (c === ']' && !classStart) inClass = false;
      out += c === '[' ? '\\[' : c;
      if (!(classStart && c === '^')) classStart = false;
      i++;
      continue;
    }
    if (c === '[') {
      inClass = true;
      classStart = true;
      out += c;
      i++;
      if (pattern[i] === '^') {
        out += '^';
        i++;
      }
      // A `]` first in a class is a literal in RE2.
      if (pattern[i] === ']') {
        out += '\\]';
        i++;
        classStart = false;
      }
      continue;
    }
    if (c === '(' && pattern[i + 1] === '?') {
      if (pattern[i + 2] === 'P' && pattern[i + 3] === '<') {
        out += '(?<';
        i += 4;
        continue;
      }
      if (pattern[i + 2] === ':') {
        out += '(?:';
        i += 3;
        continue;
      }
      // Flags inside the pattern, or turned off: RE2 reads them, the translation does not.
      const flags = FLAG_GROUP.exec(pattern.slice(i));
      if (flags && (flags[1] as string).length > 0) throw new Re2Only();
      // `(?<name>` is Go 1.22's; the RE2 of Prometheus 2.42 refuses it, as it refuses the rest.
      throw new RegexSyntaxError(`invalid or unsupported Perl syntax: \`${pattern.slice(i, i + 3)}\``);
    }
    if (c === '.') {
      out += dotAll ? '[^]' : '[^\\n]';
      i++;
      continue;
    }
    out += c;
    i++;
  }
  if (inClass) throw new RegexSyntaxError(`missing closing ]: \`${pattern}\``);
  return { source: out, flags: ignoreCase ? 'iu' : 'u' };
}

/** A compiled, anchored regular expression: what matchers and label_replace() need of one. */
export interface AnchoredRegex {
  test(value: string): boolean;
  /** The groups of a match (0: the whole value, and by name in `groups`), or null. */
  exec(value: string): RegExpExecArray | null;
}

/**
 * Compiles a Prometheus regular expression, anchored at both ends. JavaScript's engine backtracks:
 * `(.+)+x` against a 40-character label value takes 2^39 steps, and a selector would hold the
 * event loop for hours. RE2, which Prometheus uses, runs in time linear in the input; so does
 * re2js, a port of it, which runs every pattern that could backtrack without bound. Patterns that
 * cannot (no repeated group, at most one repetition, as in `GPU-.*` or `a|b|c`, which is most of
 * what dashboards send) keep the native engine, ten times faster.
 */
export function compileAnchoredRegex(pattern: string): AnchoredRegex {
  // Counted repetitions past RE2's 1,000 (`a{1,1001}`, `(a{500}){3}`) are JavaScript's to run.
  if (/\{\d/.test(pattern)) {
    const refused = re2Refusal(pattern);
    if (refused) throw refused;
  }
  let translated: TranslatedRegex;
  try {
    translated = translateRe2(pattern);
  } catch (error) {
    if (error instanceof Re2Only) return re2Regex(pattern);
    throw error instanceof RegexSyntaxError ? (re2Refusal(pattern) ?? error) : error;
  }
  const { source, flags } = translated;
  let native: RegExp;
  try {
    native = new RegExp(`^(?:${source})$`, flags);
  } catch (e) {
    throw (
      re2Refusal(pattern) ??
      new RegexSyntaxError((e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /, ''))
    );
  }
  if (backtrackFree(source)) return native;
  return re2Regex(pattern);
}

/**
 * RE2's refusal of the pattern, in Go's words, if it refuses it: Prometheus compiles it anchored
 * (`^(?:...)$`), so that is the text its errors quote (`missing closing ): \`^(?:()$\``).
 */
function re2Refusal(pattern: string): RegexSyntaxError | undefined {
  try {
    RE2JS.compile(`^(?:${pattern})$`);
    return undefined;
  } catch (e) {
    return new RegexSyntaxError((e as Error).message.replace(/^error parsing regexp: /, ''));
  }
}

/** The pattern compiled by re2js, anchored: RE2's own syntax and its linear time. */
function re2Regex(pattern: string): AnchoredRegex {
  let linear: RE2JS;
  try {
    linear = RE2JS.compile(`^(?:${pattern})$`);
  } catch (e) {
    throw new RegexSyntaxError((e as Error).message.replace(/^error parsing regexp: /, ''));
  }
  return {
    test: (value) => linear.testExact(value),
    exec: (value) => linear.exec(value) as RegExpExecArray | null,
  };
}

/**
 * Whether a translated pattern runs in linear time on a backtracking engine: no quantifier after a
 * group, at most one quantifier in all (one loop over single characters can only be retried once
 * for each position it stopped at), and at most one alternation (a run of groups of choices, as
 * `(a|a)(a|a)...`, is retried for every combination of them: 2^29 for 29 such groups).
 */
function backtrackFree(source: string): boolean {
  let quantifiers = 0;
  let alternations = 0;
  let inClass = false;
  /** For the group being read at each depth (the pattern itself at 0): whether it holds a `|`. */
  const choices: boolean[] = [false];
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      // An escape; `\u{...}` and `\p{...}` take their braces with them.
      const next = source[i + 1];
      i =
        next && 'upP'.includes(next) && source[i + 2] === '{'
          ? Math.max(source.indexOf('}', i), i + 1)
          : i + 1;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') choices.push(false);
    else if (c === ')') {
      if (choices.length > 1 && choices.pop() && ++alternations > 1) return false;
    } else if (c === '|') choices[choices.length - 1] = true;
    else if (c === '*' || c === '+' || (c === '?' && source[i - 1] !== '(') || c === '{') {
      if (source[i - 1] === ')' || ++quantifiers > 1) return false;
    }
  }
  return !(choices[0] && ++alternations > 1);
}

/**
 * Go's `Regexp.Expand` template: `$1`, `${1}`, `$name`, `${name}`, `$$`. A name is the longest run
 * of letters, digits and underscores, so `$1x` names group `1x` (which expands to nothing).
 */
export function expandTemplate(template: string, match: RegExpExecArray, max = Infinity): string | undefined {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    if (template[i + 1] === '$') {
      out += '$';
      i += 2;
      continue;
    }
    let name: string;
    let end: number;
    if (template[i + 1] === '{') {
      const close = template.indexOf('}', i + 2);
      const inner = close < 0 ? '' : template.slice(i + 2, close);
      if (close < 0 || !/^[A-Za-z0-9_]+$/.test(inner)) {
        out += '$';
        i++;
        continue;
      }
      name = inner;
      end = close + 1;
    } else {
      const m = /^[A-Za-z0-9_]+/.exec(template.slice(i + 1));
      if (!m) {
        out += '$';
        i++;
        continue;
      }
      name = m[0];
      end = i + 1 + name.length;
    }
    // A number as Go's Expand reads one: no leading zero, under 1e8 (`$01` names no group).
    if (/^(0|[1-9][0-9]{0,7})$/.test(name)) {
      const n = Number(name);
      if (n < match.length) out += match[n] ?? '';
    } else {
      out += match.groups?.[name] ?? '';
    }
    if (out.length > max) return undefined;
    i = end;
  }
  return out.length > max ? undefined : out;
}
