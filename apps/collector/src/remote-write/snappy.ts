/** Why a snappy block could not be decoded: a 400 for the sender. */
export class SnappyError extends Error {}

/** The block declares more bytes than the caller allows: refused before anything is allocated. */
export class SnappyTooLargeError extends SnappyError {
  constructor(
    readonly declared: number,
    readonly limit: number,
  ) {
    super(`it declares ${declared} bytes uncompressed, more than the ${limit}-byte limit`);
  }
}

/** The uncompressed length a snappy block declares (its preamble), and where its elements start. */
export function snappyDeclaredLength(input: Uint8Array): { length: number; start: number } {
  let length = 0;
  for (let i = 0; i < 5; i++) {
    if (i >= input.length) throw new SnappyError('it ends inside its length preamble');
    const byte = input[i] as number;
    length += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) {
      if (length > 0xffffffff) throw new SnappyError('its length preamble is over 32 bits');
      return { length, start: i + 1 };
    }
  }
  throw new SnappyError('its length preamble is over 32 bits');
}

/**
 * Decodes a snappy block (the block format Prometheus remote write uses, not the framed stream).
 * The declared length is checked against `maxLength` before the output is allocated, every literal
 * and copy is bounds-checked against the input and the output, and the output must come out
 * exactly as long as declared. Time is linear in the output, which the limit bounds.
 */
export function snappyDecode(input: Uint8Array, maxLength: number): Buffer {
  const { length, start } = snappyDeclaredLength(input);
  if (length > maxLength) throw new SnappyTooLargeError(length, maxLength);
  // Unsafe is safe here: a block that does not write every byte is refused below.
  const out = Buffer.allocUnsafe(length);
  let o = 0;
  let i = start;
  const end = input.length;
  while (i < end) {
    const tag = input[i++] as number;
    let len: number;
    let offset: number;
    switch (tag & 3) {
      case 0: {
        len = tag >>> 2;
        if (len >= 60) {
          const bytes = len - 59;
          if (i + bytes > end) throw new SnappyError('it ends inside a literal length');
          len = 0;
          for (let k = 0; k < bytes; k++) len += (input[i + k] as number) * 2 ** (8 * k);
          i += bytes;
        }
        len += 1;
        if (len > end - i) throw new SnappyError('a literal runs past the end of the input');
        if (len > length - o) throw new SnappyError('it holds more bytes than its preamble declares');
        out.set(input.subarray(i, i + len), o);
        o += len;
        i += len;
        continue;
      }
      case 1:
        if (i >= end) throw new SnappyError('it ends inside a copy');
        len = 4 + ((tag >>> 2) & 7);
        offset = ((tag >>> 5) << 8) | (input[i++] as number);
        break;
      case 2:
        if (i + 2 > end) throw new SnappyError('it ends inside a copy');
        len = 1 + (tag >>> 2);
        offset = (input[i] as number) | ((input[i + 1] as number) << 8);
        i += 2;
        break;
      default:
        if (i + 4 > end) throw new SnappyError('it ends inside a copy');
        len = 1 + (tag >>> 2);
        offset =
          (input[i] as number) +
          (input[i + 1] as number) * 0x100 +
          (input[i + 2] as number) * 0x10000 +
          (input[i + 3] as number) * 0x1000000;
        i += 4;
    }
    if (offset === 0 || offset > o) throw new SnappyError('a copy refers to bytes before the start');
    if (len > length - o) throw new SnappyError('it holds more bytes than its preamble declares');
    if (offset >= len) {
      out.copyWithin(o, o - offset, o - offset + len);
      o += len;
    } else {
      // Overlapping: the copy repeats the last `offset` bytes, each byte written before it is read.
      for (let k = 0; k < len; k++, o++) out[o] = out[o - offset] as number;
    }
  }
  if (o !== length) throw new SnappyError(`it holds ${o} bytes, not the ${length} its preamble declares`);
  return out;
}
