/** Bits written most significant first into a growing byte buffer. */
export class BitWriter {
  private buf: Uint8Array;
  private pos = 0;
  private acc = 0;
  private bits = 0;

  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
  }

  private ensure(bytes: number): void {
    if (this.pos + bytes <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.pos + bytes + 64));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  /** Writes the low `width` bits of `value` (0 <= value < 2^width, width <= 53). */
  write(value: number, width: number): void {
    if (width > 24) {
      const low = value % 0x1000000;
      this.write((value - low) / 0x1000000, width - 24);
      this.write(low, 24);
      return;
    }
    this.ensure(4);
    this.acc = (this.acc << width) | value;
    this.bits += width;
    while (this.bits >= 8) {
      this.bits -= 8;
      this.buf[this.pos++] = (this.acc >>> this.bits) & 0xff;
    }
    this.acc &= (1 << this.bits) - 1;
  }

  /** Pads to the next byte boundary with zero bits. */
  align(): void {
    if (this.bits > 0) {
      this.ensure(1);
      this.buf[this.pos++] = (this.acc << (8 - this.bits)) & 0xff;
      this.acc = 0;
      this.bits = 0;
    }
  }

  bytes(bytes: ArrayLike<number>): void {
    this.align();
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  byte(value: number): void {
    this.align();
    this.ensure(1);
    this.buf[this.pos++] = value & 0xff;
  }

  get length(): number {
    return this.pos + (this.bits > 0 ? 1 : 0);
  }

  /** The bytes written so far (a copy), aligned. */
  finish(): Buffer {
    this.align();
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

/** Reads what BitWriter wrote. */
export class BitReader {
  private bitPos: number;

  constructor(
    private readonly buf: Uint8Array,
    byteOffset = 0,
  ) {
    this.bitPos = byteOffset * 8;
  }

  read(width: number): number {
    if (width > 24) {
      const high = this.read(width - 24);
      return high * 0x1000000 + this.read(24);
    }
    if (width === 0) return 0;
    // The (up to) 31 bits from here fit in the 4 bytes from here: one word, one shift.
    const at = this.bitPos >>> 3;
    const b = this.buf;
    const word = ((b[at] ?? 0) << 24) | ((b[at + 1] ?? 0) << 16) | ((b[at + 2] ?? 0) << 8) | (b[at + 3] ?? 0);
    const value = (word << (this.bitPos & 7)) >>> (32 - width);
    this.bitPos += width;
    return value;
  }

  readBit(): number {
    const byte = this.buf[this.bitPos >>> 3] ?? 0;
    const bit = (byte >>> (7 - (this.bitPos & 7))) & 1;
    this.bitPos++;
    return bit;
  }

  align(): void {
    this.bitPos = Math.ceil(this.bitPos / 8) * 8;
  }

  get byteOffset(): number {
    return Math.ceil(this.bitPos / 8);
  }

  set byteOffset(offset: number) {
    this.bitPos = offset * 8;
  }

  get bitOffset(): number {
    return this.bitPos;
  }

  set bitOffset(offset: number) {
    this.bitPos = offset;
  }
}

/** Bits needed for a non-negative integer below 2^53. */
export function bitWidth(value: number): number {
  if (value < 0x100000000) return 32 - Math.clz32(value);
  return 64 - Math.clz32(Math.floor(value / 0x100000000));
}

export const zigzag = (n: number): number => (n < 0 ? -2 * n - 1 : 2 * n);
export const unzigzag = (z: number): number => (z % 2 === 1 ? -(z + 1) / 2 : z / 2);
