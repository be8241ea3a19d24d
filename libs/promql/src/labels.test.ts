import { compareLabels, compareStrings, labelsFromRecord } from './labels';

/** Go's order: the strings' UTF-8 bytes. */
const goOrder = (a: string, b: string) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));

describe('compareStrings', () => {
  it('orders a character past U+FFFF after U+E000-U+FFFF, as Go does (JavaScript would put it first)', () => {
    const emoji = '\u{1F600}';
    const fullwidthA = '\uFF21';
    expect(emoji < fullwidthA).toBe(true); // UTF-16's order
    expect(compareStrings(emoji, fullwidthA)).toBe(1);
    expect(compareStrings(fullwidthA, emoji)).toBe(-1);
    expect(['b\u{10000}', 'b\uFFFF', 'b\uE000', 'b\uD7FF', 'b'].sort(compareStrings)).toEqual([
      'b',
      'b\uD7FF',
      'b\uE000',
      'b\uFFFF',
      'b\u{10000}',
    ]);
  });

  it('agrees with the order of UTF-8 bytes on strings drawn from every plane', () => {
    const pool = [
      'a',
      'B',
      '_',
      '\u00e9',
      '\u6e29',
      '\uD7FF',
      '\uE000',
      '\uFFFD',
      '\u{1F600}',
      '\u{10FFFF}',
      '',
    ];
    let seed = 7;
    const pick = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return pool[seed % pool.length] as string;
    };
    const strings = Array.from({ length: 400 }, () => pick() + pick() + pick());
    for (let i = 1; i < strings.length; i++) {
      const [a, b] = [strings[i - 1] as string, strings[i] as string];
      expect([a, b, compareStrings(a, b)]).toEqual([a, b, goOrder(a, b)]);
    }
    expect([...strings].sort(compareStrings)).toEqual([...strings].sort(goOrder));
  });

  it('puts a prefix first and calls equal strings equal', () => {
    expect(compareStrings('gpu', 'gpu_util')).toBe(-1);
    expect(compareStrings('gpu_util', 'gpu')).toBe(1);
    expect(compareStrings('\u{1F600}', '\u{1F600}')).toBe(0);
  });
});

describe('compareLabels', () => {
  it('orders label sets by their values in Go order', () => {
    const a = labelsFromRecord({ job: '\uFF21' });
    const b = labelsFromRecord({ job: '\u{1F600}' });
    expect([b, a].sort(compareLabels)).toEqual([a, b]);
  });
});
