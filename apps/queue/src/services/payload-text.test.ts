import { randomUUID } from 'node:crypto';
import { binaryJsonArray, binaryUuidArray, payloadRanges } from './payload-text';

/** A small deterministic generator of JSON values, written with random spacing. */
function generator(seed: number) {
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)] as T;
  const space = () => pick(['', '', ' ', '\n  ', '\t', '\r\n']);
  const strings = [
    '',
    'plain',
    'quote " inside',
    'back \\ slash',
    'brace } ] { [',
    'é 😀 ü',
    '\\"',
    '\u2028',
  ];
  const value = (depth: number): string => {
    const kind = depth > 3 ? pick([0, 1, 2]) : pick([0, 1, 2, 3, 4]);
    if (kind === 0) return pick(['0', '-1.5e+10', '12345678901234567890', '1.10', 'true', 'false', 'null']);
    if (kind === 1 || kind === 2) {
      const text = JSON.stringify(pick(strings));
      // Sometimes escape an ordinary letter, as a hand-written client might.
      return random() < 0.2 ? text.replace(/a/, '\\u0061') : text;
    }
    if (kind === 3) {
      const items = Array.from(
        { length: Math.floor(random() * 4) },
        () => space() + value(depth + 1) + space(),
      );
      return `[${items.join(',') || space()}]`;
    }
    const members = Array.from(
      { length: Math.floor(random() * 4) },
      () =>
        `${space()}${JSON.stringify(pick(['k', 'payload', 'id', '}']))}${space()}:${space()}${value(depth + 1)}${space()}`,
    );
    return `{${members.join(',') || space()}}`;
  };
  return { random, pick, space, value };
}

describe('payloadRanges', () => {
  it('finds every payload of a batch exactly as written, through spacing, escapes and repeated keys', () => {
    const g = generator(11);
    for (let n = 0; n < 300; n++) {
      const payloads = Array.from({ length: 1 + Math.floor(g.random() * 5) }, () => g.value(0));
      const messages = payloads.map((payload) => {
        const members = [`"payload"${g.space()}:${g.space()}${payload}`];
        if (g.random() < 0.5) members.unshift(`"id":"0a1b2c3d-0000-4000-8000-000000000000"`);
        // A key that JSON.parse reads as "payload" too, before the real one: the last one wins.
        if (g.random() < 0.3) members.unshift(`"pay\\u006coad":${g.value(2)}`);
        return `{${g.space()}${members.join(`${g.space()},${g.space()}`)}${g.space()}}`;
      });
      const text = `${g.pick(['', '\uFEFF'])}{${g.space()}"messages"${g.space()}:${g.space()}[${messages.join(',')}]${g.space()}}`;
      const body = Buffer.from(text);
      const ranges = payloadRanges(body, true);
      expect(ranges?.map(([s, e]) => body.toString('utf8', s, e))).toEqual(payloads);
      const parsed = JSON.parse(text.replace(/^\uFEFF/, '')) as { messages: { payload: unknown }[] };
      expect(ranges?.map(([s, e]) => JSON.parse(body.toString('utf8', s, e)))).toEqual(
        parsed.messages.map((m) => m.payload),
      );
    }
  });

  it('finds the payload of a single message, wherever the key is', () => {
    const body = Buffer.from('{ "id" : "x", "payload" : { "a" : [1, "}"] } , "z": 1 }');
    const [range] = payloadRanges(body, false) ?? [];
    expect(range && body.toString('utf8', ...range)).toBe('{ "a" : [1, "}"] }');
  });

  it('gives up (the caller serialises instead) on bodies that are not UTF-8 or not the expected shape', () => {
    expect(payloadRanges(Buffer.from([0x7b, 0xff, 0x7d]), false)).toBeUndefined();
    expect(payloadRanges(Buffer.from('{"messages":{"payload":1}}'), true)).toBeUndefined();
    expect(payloadRanges(Buffer.from('{"messages":[{"id":"x"}]}'), true)).toBeUndefined();
    expect(payloadRanges(Buffer.from('[1]'), false)).toBeUndefined();
  });
});

describe('binaryJsonArray', () => {
  it('lays out a one-dimensional json[] in the binary wire format', () => {
    const array = binaryJsonArray([Buffer.from('{}'), Buffer.from('"é"')]);
    expect([...array.subarray(0, 20)]).toEqual([
      ...[0, 0, 0, 1], // dimensions
      ...[0, 0, 0, 0], // no NULLs
      ...[0, 0, 0, 114], // element type: json
      ...[0, 0, 0, 2], // length
      ...[0, 0, 0, 1], // lower bound
    ]);
    expect(array.subarray(20).toString('latin1')).toBe(
      `\u0000\u0000\u0000\u0002{}\u0000\u0000\u0000\u0004${Buffer.from('"é"').toString('latin1')}`,
    );
  });

  it('is an empty array with zero dimensions when there is nothing to send', () => {
    expect([...binaryJsonArray([])]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 114]);
  });
});

describe('binaryUuidArray', () => {
  it('sends each id as its 16 bytes, whatever the case of its hex digits', () => {
    const array = binaryUuidArray([
      '0190A1B2-c3d4-7e5f-8a6b-0c1d2e3f4a5b',
      '00000000-0000-0000-0000-000000000001',
    ]);
    expect([...array.subarray(0, 20)]).toEqual([
      0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x0b, 0x86, 0, 0, 0, 2, 0, 0, 0, 1,
    ]);
    expect(array.readInt32BE(20)).toBe(16);
    expect(array.subarray(24, 40).toString('hex')).toBe('0190a1b2c3d47e5f8a6b0c1d2e3f4a5b');
    expect(array.readInt32BE(40)).toBe(16);
    expect(array.subarray(44, 60).toString('hex')).toBe('00000000000000000000000000000001');
    expect(array.length).toBe(60);
  });

  it('matches the hex of the id for any UUID', () => {
    const ids = Array.from({ length: 1_000 }, () => randomUUID());
    const array = binaryUuidArray(ids);
    ids.forEach((id, i) => {
      expect(array.subarray(24 + i * 20, 40 + i * 20).toString('hex')).toBe(id.replace(/-/g, ''));
    });
  });

  it('refuses what is not a UUID instead of sending half of one', () => {
    for (const bad of [
      'not-a-uuid',
      '0190a1b2-c3d4-7e5f-8a6b-0c1d2e3f4a5g', // a non-hex digit
      '0190a1b2c-3d4-7e5f-8a6b-0c1d2e3f4a5b', // a dash out of place
      '0190a1b2-c3d4-7e5f-8a6b-0c1d2e3f4a5é',
    ])
      expect(() => binaryUuidArray([bad])).toThrow(TypeError);
  });
});
