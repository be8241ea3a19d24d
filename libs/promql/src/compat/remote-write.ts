import type { Labels } from '../labels';

/** One series to send: its labels and its samples' times (ms) and values (stale markers kept). */
export interface WriteSeries {
  labels: Labels;
  timestamps: ArrayLike<number>;
  values: Float64Array;
}

class Writer {
  private buf: Uint8Array;
  length = 0;

  /** Small by default: a writer is made per label and per sample, and grows as needed. */
  constructor(size = 64) {
    this.buf = new Uint8Array(size);
  }

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.length++] = b;
  }

  varint(n: number): void {
    while (n >= 0x80) {
      this.byte((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.byte(n);
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

const utf8 = new TextEncoder();

function lengthDelimited(w: Writer, field: number, payload: Uint8Array): void {
  w.varint((field << 3) | 2);
  w.varint(payload.length);
  w.bytes(payload);
}

/** A remote write 1.0 `WriteRequest` (protobuf), values written bit for bit. */
export function encodeWriteRequest(series: readonly WriteSeries[]): Uint8Array {
  const out = new Writer(1 << 16);
  for (const s of series) {
    const ts = new Writer(1024);
    for (const l of s.labels) {
      const label = new Writer();
      lengthDelimited(label, 1, utf8.encode(l.name));
      lengthDelimited(label, 2, utf8.encode(l.value));
      lengthDelimited(ts, 1, label.result());
    }
    const bytes = new Uint8Array(s.values.buffer, s.values.byteOffset, s.values.byteLength);
    for (let i = 0; i < s.timestamps.length; i++) {
      const sample = new Writer();
      sample.byte((1 << 3) | 1);
      sample.bytes(bytes.subarray(i * 8, i * 8 + 8));
      sample.byte((2 << 3) | 0);
      sample.varint(s.timestamps[i]);
      lengthDelimited(ts, 2, sample.result());
    }
    lengthDelimited(out, 1, ts.result());
  }
  return out.result();
}

/** Snappy block format made only of literals: valid for any reader, no compression needed. */
export function snappyLiteral(data: Uint8Array): Uint8Array {
  const out = new Writer();
  out.varint(data.length);
  for (let i = 0; i < data.length; i += 65536) {
    const chunk = data.subarray(i, Math.min(i + 65536, data.length));
    out.byte(61 << 2);
    out.byte((chunk.length - 1) & 0xff);
    out.byte((chunk.length - 1) >> 8);
    out.bytes(chunk);
  }
  return out.result();
}

/** Sends series to a Prometheus remote write endpoint; throws on any non-2xx answer. */
export async function remoteWrite(url: string, series: readonly WriteSeries[]): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-protobuf',
      'Content-Encoding': 'snappy',
      'X-Prometheus-Remote-Write-Version': '0.1.0',
    },
    body: snappyLiteral(encodeWriteRequest(series)),
  });
  if (!res.ok) throw new Error(`remote write answered ${res.status}: ${await res.text()}`);
}

/**
 * Sends a data set to Prometheus in time order, ten minutes per request (its head accepts what is
 * no older than its newest hour). Timestamps must be ascending within each series.
 */
export async function remoteWriteDataset(
  url: string,
  data: readonly { labels: WriteSeries['labels']; timestamps: readonly number[]; values: Float64Array }[],
): Promise<void> {
  const slice = 10 * 60_000;
  let first = Infinity;
  let last = -Infinity;
  for (const s of data) {
    if (s.timestamps.length === 0) continue;
    first = Math.min(first, s.timestamps[0] as number);
    last = Math.max(last, s.timestamps[s.timestamps.length - 1] as number);
  }
  // Each series' samples are taken in order, a slice at a time, from where the last slice ended.
  const next = new Array<number>(data.length).fill(0);
  for (let from = first; from <= last; from += slice) {
    const batch: WriteSeries[] = [];
    data.forEach((s, k) => {
      const lo = next[k] as number;
      let hi = lo;
      while (hi < s.timestamps.length && (s.timestamps[hi] as number) < from + slice) hi++;
      next[k] = hi;
      if (hi === lo) return;
      const values = new Float64Array(hi - lo);
      // Bit for bit: staleness markers are NaNs that a copy through numbers may change.
      new Uint32Array(values.buffer).set(
        new Uint32Array(s.values.buffer, s.values.byteOffset + lo * 8, (hi - lo) * 2),
      );
      batch.push({ labels: s.labels, timestamps: s.timestamps.slice(lo, hi), values });
    });
    await remoteWrite(url, batch);
  }
}
