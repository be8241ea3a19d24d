import { compileMatcher, type MatchType, setMatches } from './matchers';

const set = (type: MatchType, value: string) => setMatches(compileMatcher({ type, name: 'l', value }));

describe('setMatches: the values a matcher can only match', () => {
  it.each([
    ['=', 'a', ['a']],
    ['=~', 'a', ['a']],
    ['=~', 'a|b', ['a', 'b']],
    ['=~', '(a|b)', ['a', 'b']],
    ['=~', '(?:node-1|node-2)', ['node-1', 'node-2']],
    ['=~', 'a|a|b', ['a', 'b']],
    ['=~', 'node\\.example\\.com|x\\|y', ['node.example.com', 'x|y']],
    ['=~', '0\\.5|\\+Inf', ['0.5', '+Inf']],
    ['=~', 'GPU-0a1b-c d/e:f@g', ['GPU-0a1b-c d/e:f@g']],
  ] as const)('%s"%s" names %j', (type, value, values) => {
    expect(set(type, value)).toEqual(values);
  });

  it.each([
    ['=', ''], // a missing label
    ['!=', 'a'],
    ['!~', 'a|b'],
    ['=~', ''],
    ['=~', 'a|'], // also a missing label
    ['=~', '|a'],
    ['=~', 'a.b'],
    ['=~', 'a*'],
    ['=~', 'a+|b'],
    ['=~', 'host-[01]'],
    ['=~', '(?i)a'],
    ['=~', 'a{2}'],
    ['=~', '^a$'],
    ['=~', '(a)|(b)'],
    ['=~', '((a|b))'],
    ['=~', 'a\\d'],
    ['=~', '\\Qa.b\\E'],
  ] as const)('%s"%s" names none', (type, value) => {
    expect(set(type, value)).toBeNull();
  });

  it('names only values the matcher matches', () => {
    for (const value of ['a|b', '(x|y\\.z)', 'node-1']) {
      const m = compileMatcher({ type: '=~', name: 'l', value });
      for (const v of setMatches(m) ?? []) expect(m.matches(v)).toBe(true);
    }
  });
});

describe('compileMatcher on a long regular expression', () => {
  it('refuses one past 16 Ki characters that is not a list of literal values, by name', () => {
    const pattern = Array.from({ length: 3_000 }, (_, i) => `.*h${i}.*`).join('|');
    expect(pattern.length).toBeGreaterThan(16_384);
    expect(() => compileMatcher({ type: '=~', name: 'Hostname', value: pattern })).toThrow(
      'regular expression longer than 16384 characters (only a list of literal values may be longer)',
    );
    const literal = Array.from({ length: 3_000 }, (_, i) => `host-${i}\\.example`).join('|');
    expect(compileMatcher({ type: '=~', name: 'Hostname', value: literal }).matches('host-7.example')).toBe(
      true,
    );
    const short = compileMatcher({
      type: '=~',
      name: 'Hostname',
      value: pattern.slice(0, 16_000).replace(/\|[^|]*$/, ''),
    });
    expect(short.matches('node-h12-x')).toBe(true);
    expect(short.matches('node-x')).toBe(false);
  });
});

describe('compileMatcher on a list of literal values', () => {
  it('matches exactly the values of a list of 200,000 (a Grafana variable of every host), at once', () => {
    const hosts = Array.from({ length: 200_000 }, (_, i) => `host-${i}.example`);
    const list = hosts.map((h) => h.replace(/\./g, '\\.')).join('|');
    // As written by hand, and as Grafana writes a variable's values: in a group.
    for (const [type, pattern] of [
      ['=~', list],
      ['!~', list],
      ['=~', `(${list})`],
      ['!~', `(?:${list})`],
    ] as const) {
      const m = compileMatcher({ type, name: 'instance', value: pattern });
      const yes = type === '=~';
      expect(m.matches('host-0.example')).toBe(yes);
      expect(m.matches('host-199999.example')).toBe(yes);
      expect(m.matches('host-200000.example')).toBe(!yes);
      expect(m.matches('host-1')).toBe(!yes); // a prefix of a value is not a match: the pattern is anchored
      expect(m.matches('host-1xexample')).toBe(!yes); // \. is a dot, not any character
      expect(m.matches('')).toBe(!yes);
    }
  });

  it('matches a list as the regular expression would, escapes and all', () => {
    for (const [pattern, value, expected] of [
      ['a|b', 'a', true],
      ['a|b', 'ab', false],
      ['a\\|b', 'a|b', true],
      ['a\\|b', 'a', false],
      ['gpu-0|gpu-1', 'gpu-1', true],
      ['a|', '', true], // an empty alternative: the regular expression decides
      ['a|b.c', 'bxc', true], // a metacharacter: likewise
    ] as const)
      expect(compileMatcher({ type: '=~', name: 'l', value: pattern }).matches(value)).toBe(expected);
  });
});
