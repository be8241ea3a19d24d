import { BitReader, BitWriter } from './bit-io';
import type { Block } from './block-codec';

/**
 * Prometheus' XOR chunk (Gorilla: delta-of-delta times in 14/17/20/64-bit buckets, values XORed
 * with the previous one), on millisecond times. Kept beside the block codec so the storage
 * benchmark can weigh the same data both ways; the streamer stores blocks.
 */
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const HI = 1;
const LO = 0;

function clz64(hi: number, lo: number): number {
  return hi !== 0 ? Math.clz32(hi) : 32 + Math.clz32(lo);
}
function ctz32(x: number): number {
  return x === 0 ? 32 : 31 - Math.clz32(x & -x);
}
function ctz64(hi: number, lo: number): number {
  return lo !== 0 ? ctz32(lo) : 32 + ctz32(hi);
}

function writeVarint(out: BitWriter, n: number): void {
  let z = n < 0 ? -2 * n - 1 : 2 * n;
  while (z >= 0x80) {
    out.write((z % 0x80) | 0x80, 8);
    z = Math.floor(z / 0x80);
  }
  out.write(z, 8);
}

function readVarint(reader: BitReader): number {
  let z = 0;
  let scale = 1;
  for (;;) {
    const byte = reader.read(8);
    z += (byte & 0x7f) * scale;
    if (byte < 0x80) break;
    scale *= 0x80;
  }
  return z % 2 === 1 ? -(z + 1) / 2 : z / 2;
}

/** Writes bits [from, to) of the 64-bit pattern (hi, lo), most significant first (bit 63 is from = 0). */
function writeBits64(out: BitWriter, hi: number, lo: number, from: number, to: number): void {
  for (let bit = from; bit < to;) {
    if (bit < 32) {
      const end = Math.min(to, 32);
      out.write(
        ((hi >>> (32 - end)) & (end - bit === 32 ? 0xffffffff : (1 << (end - bit)) - 1)) >>> 0,
        end - bit,
      );
      bit = end;
    } else {
      const end = to;
      out.write(
        ((lo >>> (64 - end)) & (end - bit === 32 ? 0xffffffff : (1 << (end - bit)) - 1)) >>> 0,
        end - bit,
      );
      bit = end;
    }
  }
}

function readBits64(reader: BitReader, from: number, to: number): [number, number] {
  let hi = 0;
  let lo = 0;
  for (let bit = from; bit < to;) {
    if (bit < 32) {
      const end = Math.min(to, 32);
      hi = (hi | (reader.read(end - bit) << (32 - end))) >>> 0;
      bit = end;
    } else {
      lo = (lo | (reader.read(to - bit) << (64 - to))) >>> 0;
      bit = to;
    }
  }
  return [hi, lo];
}

const inRange = (x: number, bits: number) => -(2 ** (bits - 1) - 1) <= x && x <= 2 ** (bits - 1);

export function encodeGorilla(block: Block): Buffer {
  const n = block.times.length;
  const out = new BitWriter(16 + n * 2);
  out.write(n >>> 8, 8);
  out.write(n & 0xff, 8);
  let prevT = 0;
  let prevDelta = 0;
  let prevHi = 0;
  let prevLo = 0;
  let leading = 0xff;
  let trailing = 0;
  for (let i = 0; i < n; i++) {
    const t = Math.floor((block.times[i] as number) / 1000);
    f64[0] = block.values[i] as number;
    const hi = u32[HI] as number;
    const lo = u32[LO] as number;
    if (i === 0) {
      writeVarint(out, t);
      out.write(hi, 32);
      out.write(lo, 32);
    } else {
      const delta = t - prevT;
      if (i === 1) {
        writeVarint(out, delta);
      } else {
        const dod = delta - prevDelta;
        if (dod === 0) out.write(0, 1);
        else if (inRange(dod, 14)) {
          out.write(0b10, 2);
          out.write(dod < 0 ? dod + 2 ** 14 : dod, 14);
        } else if (inRange(dod, 17)) {
          out.write(0b110, 3);
          out.write(dod < 0 ? dod + 2 ** 17 : dod, 17);
        } else if (inRange(dod, 20)) {
          out.write(0b1110, 4);
          out.write(dod < 0 ? dod + 2 ** 20 : dod, 20);
        } else {
          out.write(0b1111, 4);
          const z = dod < 0 ? 2 ** 52 + dod : dod; // two's complement in 53 bits, padded to 64
          out.write(dod < 0 ? 0x7ff : 0, 11);
          out.write(z, 53);
        }
      }
      prevDelta = delta;
      const xhi = (hi ^ prevHi) >>> 0;
      const xlo = (lo ^ prevLo) >>> 0;
      if (xhi === 0 && xlo === 0) {
        out.write(0, 1);
      } else {
        out.write(1, 1);
        let lead = clz64(xhi, xlo);
        const trail = ctz64(xhi, xlo);
        if (lead >= 32) lead = 31;
        if (leading !== 0xff && lead >= leading && trail >= trailing) {
          out.write(0, 1);
          writeBits64(out, xhi, xlo, leading, 64 - trailing);
        } else {
          leading = lead;
          trailing = trail;
          const sig = 64 - lead - trail;
          out.write(1, 1);
          out.write(lead, 5);
          out.write(sig & 63, 6);
          writeBits64(out, xhi, xlo, lead, 64 - trail);
        }
      }
    }
    prevT = t;
    prevHi = hi;
    prevLo = lo;
  }
  return out.finish();
}

export function decodeGorilla(data: Uint8Array): Block {
  const reader = new BitReader(data);
  const n = reader.read(16);
  const times = new Float64Array(n);
  const values = new Float64Array(n);
  let t = 0;
  let delta = 0;
  let hi = 0;
  let lo = 0;
  let leading = 0;
  let trailing = 0;
  for (let i = 0; i < n; i++) {
    if (i === 0) {
      t = readVarint(reader);
      hi = reader.read(32);
      lo = reader.read(32);
    } else {
      if (i === 1) delta = readVarint(reader);
      else {
        let dod = 0;
        // The prefix: 0, 10, 110, 1110 or 1111 (the count of leading ones picks the bucket).
        let ones = 0;
        while (ones < 4 && reader.readBit() === 1) ones++;
        if (ones === 1) dod = signed(reader.read(14), 14);
        else if (ones === 2) dod = signed(reader.read(17), 17);
        else if (ones === 3) dod = signed(reader.read(20), 20);
        else if (ones === 4) {
          const top = reader.read(11);
          const z = reader.read(53);
          dod = top !== 0 ? z - 2 ** 52 : z;
        }
        delta += dod;
      }
      t += delta;
      if (reader.readBit() === 1) {
        if (reader.readBit() === 1) {
          leading = reader.read(5);
          let sig = reader.read(6);
          if (sig === 0) sig = 64;
          trailing = 64 - leading - sig;
        }
        const [xhi, xlo] = readBits64(reader, leading, 64 - trailing);
        hi = (hi ^ xhi) >>> 0;
        lo = (lo ^ xlo) >>> 0;
      }
    }
    times[i] = t * 1000;
    u32[HI] = hi;
    u32[LO] = lo;
    values[i] = f64[0] as number;
  }
  return { times, values };
}

function signed(value: number, bits: number): number {
  return value > 2 ** (bits - 1) ? value - 2 ** bits : value;
}
