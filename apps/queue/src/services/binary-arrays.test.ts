import { randomUUID } from 'node:crypto';
import { binaryJsonArray, binaryUuidArray } from './binary-arrays';

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
