import { compileAnchoredRegex } from './re2';

/** Milliseconds `run` takes. */
function timed(run: () => void): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

describe('compileAnchoredRegex', () => {
  const uuid = 'GPU-0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d';

  it.each([
    // Each of these takes 2^n steps or more on a backtracking engine for a 40-character value.
    ['(.+)+x', uuid, false],
    ['(a|a)*b', 'a'.repeat(40), false],
    ['(a*)*b', 'a'.repeat(40), false],
    ['(?i)(.+)+X', uuid, false],
    ['(.*a){20}', `${'a'.repeat(40)}b`, false],
    ['(\\w+\\s?)+$', `${'word '.repeat(12)}!`, false],
    // Groups of choices one after another, no quantifier: every combination is tried.
    ['(a|a)'.repeat(40) + 'c', 'a'.repeat(40), false],
    ['(?:a|a)'.repeat(40), `${'a'.repeat(39)}b`, false],
    ['(a|ab)(c|bcd)'.repeat(20) + 'x', 'abcd'.repeat(20), false],
    // And the same kind of pattern where it does match.
    ['(.+)+d', uuid, true],
    ['(GPU-[0-9a-f]+-?)+', 'GPU-0a1b-2c3d', false],
    ['(GPU-|[0-9a-f]+-?)+', 'GPU-0a1b-2c3d', true],
  ])('matches %p against a hostile value in linear time', (pattern, value, expected) => {
    const re = compileAnchoredRegex(pattern);
    let matched: boolean | undefined;
    expect(timed(() => (matched = re.test(value)))).toBeLessThan(250);
    expect(matched).toBe(expected);
  });

  it.each([
    // Patterns either engine answers alike: anchored, `.` stops at a newline, (?i), classes.
    ['GPU-.*', uuid, true],
    ['gpu-.*', uuid, false],
    ['(?i)gpu-.*', uuid, true],
    ['node-1|node-2', 'node-2', true],
    ['node-1|node-2', 'node-22', false],
    ['.*', 'a\nb', false],
    ['(?s).*', 'a\nb', true],
    ['[[:digit:]]+\\.[[:digit:]]+', '12.5', true],
    ['(a|b)+c*', 'ababcc', true],
    ['(a|b)+c*', 'abd', false],
    ['(node|gpu)-(1|2)', 'gpu-2', true],
    ['(node|gpu)-(1|2)', 'gpu-3', false],
    ['a(b|c)d|e', 'e', true],
    ['\\Q(.+)+\\E.*', '(.+)+ and more', true],
    // Flags anywhere, set for a group, or turned off, as RE2 reads them (answers of Prometheus 2.42).
    ['(?i:k)', 'K', true],
    ['a(?i)b', 'aB', true],
    ['a(?i)b', 'AB', false],
    ['(?i)a(?-i)b', 'Ab', true],
    ['(?i)a(?-i)b', 'AB', false],
    ['x(?s:.)y', 'x\ny', true],
    ['(?m)a$\nb', 'a\nb', true],
    ['(?U)a+', 'aaa', true],
  ])('%p against %p: %p', (pattern, value, expected) => {
    expect(compileAnchoredRegex(pattern).test(value)).toBe(expected);
  });

  it('refuses (?<name>...), as the RE2 of Prometheus 2.42 does, and flags RE2 has not', () => {
    expect(() => compileAnchoredRegex('(?<n>a)b')).toThrow('invalid or unsupported Perl syntax: `(?<`');
    expect(() => compileAnchoredRegex('a(?x)b')).toThrow();
  });

  it('gives the groups of a match made with flags inside the pattern', () => {
    const re = compileAnchoredRegex('(?i:(k))-(?P<n>\\d+)');
    const match = re.exec('K-12');
    expect(match?.[1]).toBe('K');
    expect(match?.groups?.['n']).toBe('12');
  });

  it('gives the groups of a match, numbered and named, from either engine', () => {
    const simple = compileAnchoredRegex('(?P<host>[a-z]+)-.*');
    expect(simple.exec('node-7')?.[1]).toBe('node');
    expect(simple.exec('node-7')?.groups?.['host']).toBe('node');
    const nested = compileAnchoredRegex('(?P<host>([a-z]+-?)+):(\\d+)');
    const match = nested.exec('gpu-node-a:9400');
    expect(match?.[0]).toBe('gpu-node-a:9400');
    expect(match?.groups?.['host']).toBe('gpu-node-a');
    expect(match?.[3]).toBe('9400');
    expect(nested.exec('gpu-node-a:x')).toBeNull();
  });
});
