import { formatSampleValue, formatValue, type Labels, type QueryResult } from '@gpu-telemetry/promql';
import type { Response } from 'express';

/** Bytes gathered before a write: large answers go out in pieces, with backpressure. */
const PIECE = 256 * 1024;

/** Distinct times remembered, as the text that opens their points (a range's steps, ~11,000 at most). */
const MAX_TIMES = 100_000;

const COMMA = 0x2c;
const QUOTE = 0x22;
const OPEN_LIST = 0x5b; // [
const CLOSE_LIST = 0x5d; // ]
const CLOSE_OBJECT = 0x7d; // }

/**
 * The answer's bytes as they are made, in pieces of PIECE bytes handed to the response with its
 * backpressure. Numbers and the envelope are ASCII and copied a character a byte; label names and
 * values (any UTF-8) are encoded by Buffer.write. Building one string per piece instead cost a
 * rope of small strings, flattened and measured again by `res.write`: a third of the streamer's
 * CPU on a thousand-series panel.
 */
class JsonPieces {
  private buf = Buffer.allocUnsafe(PIECE);
  private n = 0;
  /** A piece went to the response without waiting for it (a long label set): wait at the next flush. */
  private handedOver = false;

  constructor(private readonly res: Response) {}

  /** Text known to be ASCII (numbers, the envelope's punctuation and keys). */
  ascii(s: string): void {
    const len = s.length;
    if (this.n + len > this.buf.length) this.room(len);
    const buf = this.buf;
    let n = this.n;
    for (let i = 0; i < len; i++) buf[n++] = s.charCodeAt(i);
    this.n = n;
  }

  /** Any text: UTF-8. */
  text(s: string): void {
    const most = s.length * 3;
    if (this.n + most > this.buf.length) this.room(most);
    this.n += this.buf.write(s, this.n);
  }

  byte(c: number): void {
    if (this.n === this.buf.length) this.room(1);
    this.buf[this.n++] = c;
  }

  /** Whether it is time to `flush`: the piece is (nearly) full, or one went out unwaited. */
  get full(): boolean {
    return this.n >= PIECE - 1024 || this.handedOver;
  }

  /**
   * Hands the piece to the response, waiting while it cannot take more; false once the reader is
   * gone (the rest of the answer would be made for no one).
   */
  async flush(last = false): Promise<boolean> {
    if (this.res.destroyed) return false;
    if (this.n > 0) {
      this.res.write(this.buf.subarray(0, this.n));
      this.buf = last ? EMPTY : Buffer.allocUnsafe(PIECE);
      this.n = 0;
    }
    this.handedOver = false;
    if (this.res.writableNeedDrain && !this.res.destroyed) await drained(this.res);
    return !this.res.destroyed;
  }

  /**
   * Makes room for `len` more bytes without waiting: the piece so far goes to the response, which
   * buffers it, and the next `flush` waits for it. Only a write longer than what `full` leaves (a
   * label set of kilobytes) gets here.
   */
  private room(len: number): void {
    if (this.n > 0) {
      this.res.write(this.buf.subarray(0, this.n));
      this.handedOver = true;
    }
    this.buf = Buffer.allocUnsafe(Math.max(PIECE, len));
    this.n = 0;
  }
}

const EMPTY = Buffer.alloc(0);

const metricJson = (labels: Labels) => {
  let out = '{';
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as Labels[number];
    out += `${i ? ',' : ''}${JSON.stringify(l.name)}:${JSON.stringify(l.value)}`;
  }
  return `${out}}`;
};

/** Resolves when the response can take more, or is gone; leaves no listener behind. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/**
 * Sends a query's answer in Prometheus' envelope (`{"status":"success","data":{resultType,
 * result},"warnings"?}`, values as strings), written as it is serialised: an answer of millions of
 * points never becomes one string (V8 caps strings at 512 MiB) nor an object per point. A point is
 * `[seconds,"value"]`; the series of a range query share their times, so each time's text is made
 * once. A scalar's value is written as Prometheus' Scalar is, never in exponent form.
 */
export async function sendQueryResult(
  res: Response,
  result: QueryResult & { warnings?: string[] },
): Promise<void> {
  res.status(200).type('application/json');
  const out = new JsonPieces(res);
  const opened = new Map<number, string>();
  const point = (ms: number, value: number, format = formatSampleValue) => {
    let open = opened.get(ms);
    if (open === undefined) {
      open = `[${ms / 1000},"`;
      if (opened.size >= MAX_TIMES) opened.clear();
      opened.set(ms, open);
    }
    out.ascii(open);
    out.ascii(format(value));
    out.byte(QUOTE);
    out.byte(CLOSE_LIST);
  };
  out.ascii(`{"status":"success","data":{"resultType":"${result.resultType}","result":`);
  switch (result.resultType) {
    case 'scalar':
      point(result.result.t, result.result.value, formatValue);
      break;
    case 'string':
      out.text(`[${result.result.t / 1000},${JSON.stringify(result.result.value)}]`);
      break;
    case 'vector':
      out.byte(OPEN_LIST);
      for (let i = 0; i < result.result.length; i++) {
        const s = result.result[i] as (typeof result.result)[number];
        out.text(`${i ? ',' : ''}{"metric":${metricJson(s.labels)},"value":`);
        point(s.t, s.value);
        out.byte(CLOSE_OBJECT);
        if (out.full && !(await out.flush())) return;
      }
      out.byte(CLOSE_LIST);
      break;
    case 'matrix':
      out.byte(OPEN_LIST);
      for (let i = 0; i < result.result.length; i++) {
        const s = result.result[i] as (typeof result.result)[number];
        out.text(`${i ? ',' : ''}{"metric":${metricJson(s.labels)},"values":[`);
        for (let k = 0; k < s.timestamps.length; k++) {
          if (k) out.byte(COMMA);
          point(s.timestamps[k] as number, s.values[k] as number);
          if (out.full && !(await out.flush())) return;
        }
        out.byte(CLOSE_LIST);
        out.byte(CLOSE_OBJECT);
      }
      out.byte(CLOSE_LIST);
      break;
  }
  out.byte(CLOSE_OBJECT);
  if (result.warnings?.length) out.text(`,"warnings":${JSON.stringify(result.warnings)}`);
  out.byte(CLOSE_OBJECT);
  if (await out.flush(true)) res.end();
}
