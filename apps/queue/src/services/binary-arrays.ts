// Postgres binary-format arrays, built by hand for the publish statement's parameters: the
// payloads as a `json[]` and their ids as a `uuid[]`. node-postgres sends a Buffer parameter as
// is, in binary format, so Postgres reads the array without the quoting, escaping and parsing of
// an array literal, and each payload reaches it as the exact bytes the client wrote (never parsed
// and serialised again: big integers, number formats and key order survive).

/** The OID of Postgres's json type. */
export const JSON_OID = 114;
const UUID_OID = 2950;

/**
 * A Postgres binary one-dimensional array (no NULLs) of `count` elements of type `oid`, with room
 * for `elementBytes` of elements (each a 4-byte length, then the value in that type's binary
 * form) from offset 20, which the caller fills. No elements: zero dimensions, 12 bytes.
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
