import { compileMatcher, type MatchType } from '@gpu-telemetry/promql';
import { labelContainment } from './prometheus-source';

const containment = (...matchers: [string, MatchType, string][]) =>
  labelContainment(matchers.map(([name, type, value]) => compileMatcher({ name, type, value })));

describe('labelContainment: what the label index may be asked for a selector', () => {
  it('asks for every equality at once', () => {
    expect(containment(['Hostname', '=', 'node-1'], ['gpu', '=', '3'])).toEqual([
      { Hostname: 'node-1', gpu: '3' },
    ]);
  });

  it('asks for each value of the shortest alternation, with the equalities', () => {
    expect(containment(['Hostname', '=~', 'a|b|c'], ['gpu', '=~', '(0|1)'], ['job', '=', 'dcgm'])).toEqual([
      { job: 'dcgm', gpu: '0' },
      { job: 'dcgm', gpu: '1' },
    ]);
  });

  it('keeps an equality that an alternation on the same label allows, and finds nothing for one it does not', () => {
    expect(containment(['gpu', '=', '1'], ['gpu', '=~', '1|2'])).toEqual([{ gpu: '1' }]);
    expect(containment(['gpu', '=', '3'], ['gpu', '=~', '1|2'])).toEqual([]);
    expect(containment(['gpu', '=', '1'], ['gpu', '=', '2'])).toEqual([]);
  });

  it('asks nothing where no matcher names its values', () => {
    expect(containment(['Hostname', '=~', '.*'], ['gpu', '!=', '1'], ['UUID', '=', ''])).toBeNull();
    expect(containment(['Hostname', '=~', 'node-1|'])).toBeNull(); // also matches no Hostname
    expect(containment(['__name__', '=', 'up'])).toBeNull(); // found by the metric name index
  });

  it('finds nothing for values with a NUL, which Postgres cannot store, and asks only for the others', () => {
    expect(containment(['Hostname', '=', 'a\u0000'])).toEqual([]);
    expect(containment(['Hostname', '=~', '\u0000|b\u0000'])).toEqual([]);
    expect(containment(['Hostname', '=~', 'a|\u0000'], ['gpu', '=', '0'])).toEqual([
      { gpu: '0', Hostname: 'a' },
    ]);
    expect(containment(['Hostname', '!=', '\u0000'])).toBeNull();
  });

  it('takes label names that objects have too', () => {
    expect(containment(['constructor', '=', 'a'], ['__proto__', '=~', 'b|c'])).toEqual([
      JSON.parse('{"constructor":"a","__proto__":"b"}'),
      JSON.parse('{"constructor":"a","__proto__":"c"}'),
    ]);
    expect(JSON.stringify(containment(['toString', '=', 'x']))).toBe('[{"toString":"x"}]');
  });

  it('leaves a very long alternation to the matchers', () => {
    const values = Array.from({ length: 1001 }, (_, i) => `n${i}`).join('|');
    expect(containment(['Hostname', '=~', values])).toBeNull();
    expect(containment(['Hostname', '=~', values], ['gpu', '=', '0'])).toEqual([{ gpu: '0' }]);
  });
});
