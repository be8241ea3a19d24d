import fc from 'fast-check';
import * as reference from 'snappyjs';
import { SnappyError, snappyDecode, snappyDeclaredLength, SnappyTooLargeError } from './snappy';

const LIMIT = 1 << 20;

/** Data that compresses the way real requests do: repeats near and far, and noise. */
const compressible = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 64 }),
      fc.string({ maxLength: 40 }).map((s) => Buffer.from(s.repeat(5))),
      fc.constantFrom(Buffer.from('__name__DCGM_FI_DEV_GPU_UTIL'), Buffer.alloc(300, 7)),
    ),
    { maxLength: 60 },
  )
  .map((parts) => Buffer.concat(parts));

describe('snappyDecode (the snappy block format)', () => {
  it('decodes whatever the reference implementation compresses, byte for byte', () => {
    fc.assert(
      fc.property(compressible, (data) => {
        const compressed = reference.compress(data);
        expect(snappyDecode(compressed, LIMIT).equals(data)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('decodes long inputs, compressed across several 64 KiB blocks', () => {
    const text = Buffer.from(
      Array.from({ length: 20_000 }, (_, i) => `series_${i % 997}{gpu="${i % 8}"} ${i}\n`).join(''),
    );
    const compressed = reference.compress(text);
    expect(compressed.length).toBeLessThan(text.length / 2);
    expect(snappyDecode(compressed, text.length).equals(text)).toBe(true);
  });

  it('decodes copies of every kind, overlapping ones included', () => {
    // "abcd", then copies with a 1-, 2- and 4-byte offset (encoders that cut input into 64 KiB
    // blocks never write the last kind, but the format has it).
    const block = Uint8Array.from([
      20, // 20 bytes
      0x0c,
      0x61,
      0x62,
      0x63,
      0x64, // literal "abcd"
      0x01,
      0x04, // copy 4 bytes from 4 back (1-byte offset): abcd
      0x0e,
      0x02,
      0x00, // copy 4 bytes from 2 back (2-byte offset): cdcd
      0x0f,
      0x01,
      0x00,
      0x00,
      0x00, // copy 4 bytes from 1 back (4-byte offset): dddd
      0x0c,
      0x78,
      0x79,
      0x7a,
      0x7a, // literal "xyzz"
    ]);
    expect(snappyDecode(block, 100).toString()).toBe('abcdabcdcdcdddddxyzz');
  });

  it('refuses a declared length over the limit before allocating anything', () => {
    // Five bytes that declare 4 GiB: refused from the preamble alone.
    const bomb = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect(snappyDeclaredLength(bomb)).toEqual({ length: 0xffffffff, start: 5 });
    expect(() => snappyDecode(bomb, LIMIT)).toThrow(SnappyTooLargeError);
    expect(() => snappyDecode(reference.compress(Buffer.alloc(2_000)), 1_999)).toThrow(
      'it declares 2000 bytes uncompressed, more than the 1999-byte limit',
    );
  });

  it.each([
    ['an empty body', [], 'it ends inside its length preamble'],
    ['a preamble over 32 bits', [0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 'its length preamble is over 32 bits'],
    [
      'fewer bytes than declared',
      [5, 0x08, 0x61, 0x62, 0x63],
      'it holds 3 bytes, not the 5 its preamble declares',
    ],
    ['more bytes than declared', [1, 0x04, 0x61, 0x62], 'it holds more bytes than its preamble declares'],
    ['a literal past the end', [4, 0x0c, 0x61], 'a literal runs past the end of the input'],
    ['a copy before the start', [8, 0x00, 0x61, 0x0d, 0x02], 'a copy refers to bytes before the start'],
    ['a copy with offset 0', [8, 0x00, 0x61, 0x0d, 0x00], 'a copy refers to bytes before the start'],
    ['a copy cut short', [8, 0x00, 0x61, 0x0e, 0x01], 'it ends inside a copy'],
    ['a literal length cut short', [8, 0xf0], 'it ends inside a literal length'],
  ])('refuses %s', (_what, bytes, message) => {
    expect(() => snappyDecode(Uint8Array.from(bytes), LIMIT)).toThrow(new SnappyError(message));
  });

  it('never throws anything but SnappyError, nor writes past the declared length, on damaged input', () => {
    fc.assert(
      fc.property(
        compressible.filter((d) => d.length > 0),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        (data, damage) => {
          const broken = Buffer.from(reference.compress(data));
          for (const [at, byte] of damage) broken[at % broken.length] = byte;
          try {
            const out = snappyDecode(broken, LIMIT);
            expect(out.length).toBe(snappyDeclaredLength(broken).length);
            // Whatever it decodes, the reference decodes the same.
            expect(Buffer.from(reference.uncompress(new Uint8Array(broken))).equals(out)).toBe(true);
          } catch (error) {
            expect(error).toBeInstanceOf(SnappyError);
          }
        },
      ),
      { numRuns: 2_000 },
    );
  });

  it('never throws anything but SnappyError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          snappyDecode(bytes, LIMIT);
        } catch (error) {
          expect(error).toBeInstanceOf(SnappyError);
        }
      }),
      { numRuns: 2_000 },
    );
  });
});
