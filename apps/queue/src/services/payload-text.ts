import { isUtf8 } from 'node:buffer';

/**
 * Payloads travel to Postgres as the client wrote them, byte for byte: a payload is never parsed
 * and serialised again, so big integers, number formats and key order survive, and the queue
 * spends no CPU re-encoding what it only stores. The request body has already been through
 * JSON.parse (it is valid JSON) and the schema (it has the expected shape); this finds where each
 * message's payload lies in it, and packs those byte ranges into one binary `json[]` parameter,
 * which Postgres reads without the quoting and escaping of an array literal.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

/** [start, end) byte offsets into the body. */
export type Range = readonly [number, number];

class Shape extends Error {}

function skipSpace(b: Buffer, i: number): number {
  for (;;) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** Index just past the string whose opening quote is at `i`. */
function endOfString(b: Buffer, i: number): number {
  for (let at = i + 1; ; at++) {
    at = b.indexOf(QUOTE, at);
    if (at < 0) throw new Shape('unterminated string');
    // A quote closes the string unless an odd number of backslashes precede it.
    let slashes = 0;
    while (b[at - 1 - slashes] === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return at + 1;
  }
}

/** Index just past the value that starts at `i` (no leading space). */
function endOfValue(b: Buffer, i: number): number {
  const c = b[i];
  if (c === QUOTE) return endOfString(b, i);
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    let depth = 0;
    for (let at = i; at < b.length;) {
      const ch = b[at];
      if (ch === QUOTE) {
        at = endOfString(b, at);
        continue;
      }
      if (ch === OPEN_OBJECT || ch === OPEN_ARRAY) depth++;
      else if ((ch === CLOSE_OBJECT || ch === CLOSE_ARRAY) && --depth === 0) return at + 1;
      at++;
    }
    throw new Shape('unterminated container');
  }
  // A number, true, false or null: up to the next delimiter.
  let at = i;
  for (;;) {
    const ch = b[at];
    if (ch === undefined || ch === COMMA || ch === CLOSE_OBJECT || ch === CLOSE_ARRAY) return at;
    if (ch === 0x20 || ch === 0x0a || ch === 0x0d || ch === 0x09) return at;
    at++;
  }
}

/** The key whose string starts at `start` and ends before `end`, unescaped only when it must be. */
function keyText(b: Buffer, start: number, end: number): string {
  const inner = b.toString('utf8', start + 1, end - 1);
  return inner.includes('\\') ? (JSON.parse(b.toString('utf8', start, end)) as string) : inner;
}

/** The value of `key` in the object at `i` (the last one, as JSON.parse would), and the object's end. */
function member(b: Buffer, i: number, key: string): { value?: Range; end: number } {
  if (b[i] !== OPEN_OBJECT) throw new Shape('not an object');
  let value: Range | undefined;
  let at = skipSpace(b, i + 1);
  if (b[at] === CLOSE_OBJECT) return { end: at + 1 };
  for (;;) {
    const keyEnd = endOfString(b, at);
    const name = keyText(b, at, keyEnd);
    at = skipSpace(b, keyEnd);
    if (b[at] !== COLON) throw new Shape('expected a colon');
    const start = skipSpace(b, at + 1);
    const end = endOfValue(b, start);
    if (name === key) value = [start, end];
    at = skipSpace(b, end);
    if (b[at] === CLOSE_OBJECT) return { value, end: at + 1 };
    if (b[at] !== COMMA) throw new Shape('expected a comma');
    at = skipSpace(b, at + 1);
  }
}

/**
 * Where each payload lies in a publish body: `{"payload": ...}` (one message) or
 * `{"messages": [{"payload": ...}, ...]}`. Undefined when the body is not UTF-8 or not that shape
 * (the caller then serialises the parsed payloads instead).
 */
export function payloadRanges(body: Buffer, batch: boolean): Range[] | undefined {
  if (!isUtf8(body)) return undefined;
  try {
    const bom = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
    let at = skipSpace(body, bom ? 3 : 0);
    if (!batch) {
      const { value } = member(body, at, 'payload');
      return value ? [value] : undefined;
    }
    const list = member(body, at, 'messages').value;
    if (!list || body[list[0]] !== OPEN_ARRAY) return undefined;
    const ranges: Range[] = [];
    at = skipSpace(body, list[0] + 1);
    if (body[at] === CLOSE_ARRAY) return ranges;
    for (;;) {
      const { value, end } = member(body, at, 'payload');
      if (!value) return undefined;
      ranges.push(value);
      at = skipSpace(body, end);
      if (body[at] === CLOSE_ARRAY) return ranges;
      if (body[at] !== COMMA) return undefined;
      at = skipSpace(body, at + 1);
    }
  } catch (error) {
    if (error instanceof Shape) return undefined;
    throw error;
  }
}

export const JSON_OID = 114;
const UUID_OID = 2950;

/**
 * A Postgres binary one-dimensional array (no NULLs) of `count` elements of type `oid`, with room
 * for `elementBytes` of elements (each a 4-byte length, then the value in that type's binary
 * form) from offset 20, which the caller fills. node-postgres sends a Buffer parameter in binary
 * format, so this reaches a `$n::type[]` parameter as is: no array literal to quote, escape and
 * parse. No elements: zero dimensions, 12 bytes.
 */
function binaryArray(oid: number, count: number, elementBytes: number): Buffer {
  if (count === 0) {
    const empty = Buffer.alloc(12);
    empty.writeUInt32BE(oid, 8);
    return empty;
  }
  const out = Buffer.allocUnsafe(20 + elementBytes);
  out.writeInt32BE(1, 0); // dimensions
  out.writeInt32BE(0, 4); // no NULLs
  out.writeUInt32BE(oid, 8);
  out.writeInt32BE(count, 12);
  out.writeInt32BE(1, 16); // lower bound
  return out;
}

/**
 * A binary `json[]` of UTF-8 JSON texts. The binary form of json is its text, and Postgres checks
 * each element is valid JSON as it receives it (json_recv), with no text-to-json cast after (a
 * `text[]` element cast to json is copied twice more: to a C string and back).
 */
export function binaryJsonArray(texts: readonly Buffer[]): Buffer {
  let bytes = 0;
  for (const text of texts) bytes += 4 + text.length;
  const out = binaryArray(JSON_OID, texts.length, bytes);
  let at = 20;
  for (const text of texts) {
    out.writeInt32BE(text.length, at);
    text.copy(out, at + 4);
    at += 4 + text.length;
  }
  return out;
}

/** A binary `uuid[]` (16 bytes each) of 8-4-4-4-12 hex ids: Postgres reads it without parsing text. */
export function binaryUuidArray(ids: readonly string[]): Buffer {
  const out = binaryArray(UUID_OID, ids.length, ids.length * 20);
  let at = 20;
  for (const id of ids) {
    out.writeInt32BE(16, at);
    writeUuid(id, out, at + 4);
    at += 20;
  }
  return out;
}

/** Hex digit values by char code; -1 for anything else. */
const HEX_VALUE = Int8Array.from({ length: 128 }, (_, code) => {
  const c = String.fromCharCode(code);
  return /[0-9a-fA-F]/.test(c) ? parseInt(c, 16) : -1;
});

/** The 16 bytes of an 8-4-4-4-12 hex UUID, written at `at` (a table lookup per digit, no regex). */
function writeUuid(id: string, out: Buffer, at: number): void {
  if (id.length !== 36) throw new TypeError(`not a UUID: ${id}`);
  let i = 0;
  for (let byte = 0; byte < 16; byte++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (id.charCodeAt(i) !== 0x2d) throw new TypeError(`not a UUID: ${id}`);
      i++;
    }
    const high = HEX_VALUE[id.charCodeAt(i)] ?? -1;
    const low = HEX_VALUE[id.charCodeAt(i + 1)] ?? -1;
    if (high < 0 || low < 0) throw new TypeError(`not a UUID: ${id}`);
    out[at + byte] = (high << 4) | low;
    i += 2;
  }
}
