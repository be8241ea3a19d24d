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
