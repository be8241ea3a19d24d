import fc from 'fast-check';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { parseExposition } from './exposition-parser';
import { parseValue, readSampleValue } from './sample-value';

/**
 * Go's strconv.ParseFloat as Prometheus calls it, written the obvious way: a regex (safe here,
 * on short text only) and the special words. The scanner must agree with it everywhere.
 */
function goParseFloat(text: string): number | 'is not a number' | 'is out of range' {
  if (/^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/.test(text)) {
    const value = Number(text);
    return Number.isFinite(value) ? value : 'is out of range';
  }
  const lower = text.toLowerCase();
  if (lower === 'nan') return NaN;
  if (['inf', '+inf', 'infinity', '+infinity'].includes(lower)) return Infinity;
  if (['-inf', '-infinity'].includes(lower)) return -Infinity;
  return 'is not a number';
}

describe('readSampleValue', () => {
  it.each([
    ['0', 0],
    ['-0', -0],
    ['16.365000', 16.365],
    ['-1.5e-3', -0.0015],
    ['.5', 0.5],
    ['+.5', 0.5],
    ['5.', 5],
    ['1.E+2', 100],
    ['9223372036854775794', Number('9223372036854775794')],
    ['1e-400', 0],
    ['1.7976931348623157e308', Number.MAX_VALUE],
    ['NaN', NaN],
    ['nan', NaN],
    ['Inf', Infinity],
    ['+Inf', Infinity],
    ['-Inf', -Infinity],
    ['INF', Infinity],
    ['Infinity', Infinity],
    ['-infinity', -Infinity],
    [`0.${'0'.repeat(5_000)}1`, 0],
    [`${'0'.repeat(5_000)}42`, 42],
  ])('reads %s as Prometheus does', (text, value) => {
    expect(readSampleValue(text)).toBe(value);
  });

  it.each([
    // Junk, and forms Go's ParseFloat has but Prometheus refuses (hexadecimal, digit separators).
    ['', 'is not a number'],
    ['ERROR', 'is not a number'],
    ['1,5', 'is not a number'],
    ['0x1p3', 'is not a number'],
    ['0x10', 'is not a number'],
    ['1_000', 'is not a number'],
    ['1e', 'is not a number'],
    ['1e+', 'is not a number'],
    ['.', 'is not a number'],
    ['+', 'is not a number'],
    ['--1', 'is not a number'],
    ['+-1', 'is not a number'],
    ['1.2.3', 'is not a number'],
    ['1e5.5', 'is not a number'],
    [' 1', 'is not a number'],
    ['1 ', 'is not a number'],
    ['+NaN', 'is not a number'],
    ['-nan', 'is not a number'],
    ['infin', 'is not a number'],
    ['info', 'is not a number'],
    ['infinityy', 'is not a number'],
    ['１', 'is not a number'],
    ['1e400', 'is out of range'],
    ['-1e309', 'is out of range'],
    ['9'.repeat(400), 'is out of range'],
  ])('refuses %p: %s', (text, problem) => {
    expect(readSampleValue(text)).toBe(problem);
    expect(parseValue(text)).toBeUndefined();
  });

  it('agrees with Go ParseFloat (as Prometheus calls it) on random number-like text', () => {
    const piece = fc.constantFrom(
      ...'0123456789'.split(''),
      '00',
      '123',
      '.',
      'e',
      'E',
      '+',
      '-',
      '_',
      'p',
      'x',
      '0x',
      'inf',
      'Inf',
      'INFINITY',
      'nan',
      'NaN',
      'ity',
      'e308',
      'e-324',
      ' ',
      '\t',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
        const text = pieces.join('');
        expect(readSampleValue(text)).toBe(goParseFloat(text));
      }),
      { numRuns: 5_000 },
    );
  });

  it('reads every decimal literal as Number() does, however long its digit, sign and exponent runs', () => {
    const digits = (max: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789'.split('')), maxLength: max });
    const literal = fc.record({
      sign: fc.constantFrom('', '+', '-'),
      whole: digits(3_000),
      fraction: fc.option(digits(3_000), { nil: undefined }),
      exponent: fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), digits(400)), {
        nil: undefined,
      }),
    });
    fc.assert(
      fc.property(literal, ({ sign, whole, fraction, exponent }) => {
        const text = `${sign}${whole}${fraction === undefined ? '' : `.${fraction}`}${exponent?.join('') ?? ''}`;
        const read = readSampleValue(text);
        if (whole + (fraction ?? '') === '' || exponent?.[2] === '') {
          expect(read).toBe('is not a number'); // no digits, or an exponent without any
          return;
        }
        const expected = Number(text);
        expect(read).toBe(Number.isFinite(expected) ? expected : 'is out of range');
      }),
      { numRuns: 1_000 },
    );
  });

  it('refuses runs of signs and exponent letters at once', () => {
    fc.assert(
      fc.property(fc.constantFrom('+', '-', 'e', 'E', '.'), fc.integer({ min: 2, max: 50_000 }), (c, n) => {
        expect(typeof readSampleValue(c.repeat(n))).toBe('string');
        expect(typeof readSampleValue(`1${c.repeat(n)}1`)).toBe('string');
      }),
      { numRuns: 50 },
    );
  });

  it('takes linear time: a million digits cost about ten times a hundred thousand', () => {
    // The regex it replaced grew with the square of the length (docs/performance.md).
    const shapes = [
      (n: number) => `${'1'.repeat(n)}x`, // refused at the last character
      (n: number) => '9'.repeat(n), // a number, out of range
      (n: number) => `-0.${'0'.repeat(n)}1e${'0'.repeat(n)}5`, // a number, read in full
    ];
    const fastest = (text: string) => {
      let best = Infinity;
      for (let run = 0; run < 7; run++) {
        const started = performance.now();
        readSampleValue(text);
        best = Math.min(best, performance.now() - started);
      }
      return best;
    };
    for (const shape of shapes) {
      const small = fastest(shape(100_000));
      const large = fastest(shape(1_000_000));
      expect(large).toBeLessThan(1_000);
      // Linear is 10x; quadratic would be 100x. Room for a loaded machine, a floor for timer grain.
      expect(large / Math.max(small, 0.05)).toBeLessThan(30);
    }
  });
});

describe('values in whole lines, against parse-prometheus-text-format', () => {
  it('reads the same series and values as the reference parser', () => {
    const name = fc.stringMatching(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,20}$/);
    const labelValue = fc.string({ maxLength: 12 }).map((s) => s.replace(/[\\"\n]/g, ''));
    const value = fc.oneof(
      fc
        .double({ noNaN: false })
        .map((v) =>
          Number.isNaN(v) ? 'NaN' : v === Infinity ? '+Inf' : v === -Infinity ? '-Inf' : String(v),
        ),
      fc.integer().map(String),
      fc.constantFrom('1e3', '.5', '-0.25', '5.', '1E-7', '+3'),
    );
    const body = fc.uniqueArray(
      fc.record({
        // (`__` names are reserved to Prometheus, and `__proto__` is no key of a plain object.)
        labels: fc.dictionary(fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_]{0,10}$/), labelValue, { maxKeys: 5 }),
        value,
      }),
      { maxLength: 20, selector: (s) => JSON.stringify(Object.entries(s.labels).sort()) },
    );
    fc.assert(
      fc.property(name, body, (metric, series) => {
        const text = series
          .map(({ labels, value }) => {
            const set = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
            return `${metric}${set.length ? `{${set.join(',')}}` : ''} ${value}\n`;
          })
          .join('');
        const ours = parseExposition(text);
        expect(ours.errors).toEqual([]);
        const reference = parsePrometheusTextFormat(text).flatMap((family) => family.metrics);
        expect(ours.samples.map((s) => [s.labels, s.value])).toEqual(
          reference.map((m) => [m.labels ?? {}, goParseFloat(m.value ?? '')]),
        );
      }),
      { numRuns: 300 },
    );
  });
});
