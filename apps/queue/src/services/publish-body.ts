import { isUtf8 } from 'node:buffer';
import { AppError, type FieldError, LOWER_UUID } from '@gpu-telemetry/model';

// A publish body, read from its bytes in one pass that builds nothing it does not keep: the
// checks a schema would make after JSON.parse (shape, field names, ids, at most 1000 messages,
// payload sizes) are made here before any object exists, so a body of millions of `{}` costs its
// bytes and a short scan, not millions of objects. Payloads are never parsed: they go to Postgres
// as the client wrote them, byte for byte (big integers, number formats and key order survive),
// as views into the body. Duplicate keys mean what JSON.parse makes of them: the last one wins.

/** Containers one value may nest (a payload, or any other value in the body). */
export const MAX_NESTING = 128;
/** Field errors listed in one answer: a body can hold millions of mistakes. */
const MAX_ERRORS = 100;

export interface PublishLimits {
  maxMessages: number;
  maxPayloadBytes: number;
}

/** A publish as the client wrote it: one id (undefined: the queue makes one up) and payload per message. */
export interface PublishBatch {
  ids: (string | undefined)[];
  /** Each payload's UTF-8 JSON text, a view into the request body. */
  payloads: Buffer[];
}

export type RefusalReason =
  'invalid_json' | 'invalid_message' | 'too_many_messages' | 'too_deep' | 'payload_too_large';

/** A publish body refused before anything was built from it; `reason` is what metrics count. */
export class PublishRefused extends AppError {
  constructor(
    readonly reason: RefusalReason,
    status: number,
    errors: FieldError[],
    detail = describe(errors),
  ) {
    super(status, detail, { errors });
  }
}

function describe(errors: FieldError[]): string {
  const [first] = errors;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${first?.field}: ${first?.message}${more}`;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

/** Not JSON: where the parser stopped. */
class JsonSyntax extends Error {
  constructor(readonly at: number) {
    super('not JSON');
  }
}

/** A value nesting more than MAX_NESTING containers. */
class TooDeep extends Error {}

/** Bytes that may follow a backslash in a JSON string (u is checked apart: four hex digits follow). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const c of '"\\/bfnrt') SIMPLE_ESCAPE[c.charCodeAt(0)] = 1;
const HEX = new Uint8Array(256);
for (const c of '0123456789abcdefABCDEF') HEX[c.charCodeAt(0)] = 1;

function skipSpace(b: Buffer, i: number): number {
  for (;;) {
    const c = b[i];
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
}

/** Index just past the string whose opening quote is at `i`. */
function endOfString(b: Buffer, i: number): number {
  let at = i + 1;
  for (;;) {
    // Skip what needs no attention: not a quote, backslash or control character (isUtf8 vouched
    // for the rest). Past the end, b[at] is undefined and fails every comparison.
    let c = b[at];
    while (c !== undefined && (c > BACKSLASH || (c >= 0x20 && c !== QUOTE && c !== BACKSLASH))) c = b[++at];
    if (c === QUOTE) return at + 1;
    if (c !== BACKSLASH) throw new JsonSyntax(at);
    const e = b[at + 1] ?? 0;
    if (SIMPLE_ESCAPE[e] === 1) at += 2;
    else if (
      e === 0x75 &&
      HEX[b[at + 2] ?? 0] === 1 &&
      HEX[b[at + 3] ?? 0] === 1 &&
      HEX[b[at + 4] ?? 0] === 1 &&
      HEX[b[at + 5] ?? 0] === 1
    )
      at += 6;
    else throw new JsonSyntax(at);
  }
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE;
}

/** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
function endOfNumber(b: Buffer, i: number): number {
  let at = i;
  if (b[at] === MINUS) at++;
  if (b[at] === ZERO) at++;
  else if (isDigit(b[at])) while (isDigit(b[at])) at++;
  else throw new JsonSyntax(at);
  if (b[at] === DOT) {
    at++;
    if (!isDigit(b[at])) throw new JsonSyntax(at);
    while (isDigit(b[at])) at++;
  }
  if (b[at] === 0x65 || b[at] === 0x45) {
    at++;
    if (b[at] === PLUS || b[at] === MINUS) at++;
    if (!isDigit(b[at])) throw new JsonSyntax(at);
    while (isDigit(b[at])) at++;
  }
  return at;
}

const LITERALS: Record<number, Buffer> = {
  0x74: Buffer.from('true'),
  0x66: Buffer.from('false'),
  0x6e: Buffer.from('null'),
};

function endOfLiteral(b: Buffer, i: number, literal: Buffer): number {
  for (let k = 0; k < literal.length; k++) if (b[i + k] !== literal[k]) throw new JsonSyntax(i + k);
  return i + literal.length;
}

/** From a member's key, which ends at `keyEnd`, to the start of its value. */
function valueAfterKey(b: Buffer, keyEnd: number): number {
  const at = skipSpace(b, keyEnd);
  if (b[at] !== COLON) throw new JsonSyntax(at);
  return skipSpace(b, at + 1);
}

/** From a member's key (at `i`) to the start of its value. */
function startOfMemberValue(b: Buffer, i: number): number {
  if (b[i] !== QUOTE) throw new JsonSyntax(i);
  return valueAfterKey(b, endOfString(b, i));
}

/** Open containers of the value being read: one parse at a time, so one stack serves them all. */
const open = new Uint8Array(MAX_NESTING);

/**
 * Index just past the JSON value that starts at `start` (no leading space), checking all of it:
 * without recursion, so nesting costs a byte of `open` per level, up to MAX_NESTING.
 */
function endOfValue(b: Buffer, start: number): number {
  let at = start;
  let depth = 0;
  for (;;) {
    const c = b[at];
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (depth === MAX_NESTING) throw new TooDeep();
      at = skipSpace(b, at + 1);
      if (b[at] === c + 2) {
        // {} or []: the closing bracket is the opening one plus two, in both cases.
        at++;
      } else {
        open[depth++] = c;
        if (c === OPEN_OBJECT) at = startOfMemberValue(b, at);
        continue;
      }
    } else if (c === QUOTE) at = endOfString(b, at);
    else if (c === MINUS || isDigit(c)) at = endOfNumber(b, at);
    else {
      const literal = c === undefined ? undefined : LITERALS[c];
      if (!literal) throw new JsonSyntax(at);
      at = endOfLiteral(b, at, literal);
    }
    // After a value: close what it ends, or go on to the next element or member.
    for (;;) {
      if (depth === 0) return at;
      at = skipSpace(b, at);
      const container = open[depth - 1] as number;
      if (b[at] === COMMA) {
        at = skipSpace(b, at + 1);
        if (container === OPEN_OBJECT) at = startOfMemberValue(b, at);
        break;
      }
      if (b[at] !== container + 2) throw new JsonSyntax(at);
      depth--;
      at++;
    }
  }
}

const OTHER = 0;
const ID = 1;
const PAYLOAD = 2;
const MESSAGES = 3;
const ID_KEY = Buffer.from('id');
const PAYLOAD_KEY = Buffer.from('payload');
const MESSAGES_KEY = Buffer.from('messages');

function spells(b: Buffer, at: number, name: Buffer): boolean {
  for (let k = 0; k < name.length; k++) if (b[at + k] !== name[k]) return false;
  return true;
}

/** Which of the envelope's keys the string at [start, end) names, without making a string of it. */
function keyKind(b: Buffer, start: number, end: number): number {
  const length = end - start - 2;
  if (length === 7 && spells(b, start + 1, PAYLOAD_KEY)) return PAYLOAD;
  if (length === 2 && spells(b, start + 1, ID_KEY)) return ID;
  if (length === 8 && spells(b, start + 1, MESSAGES_KEY)) return MESSAGES;
  // A key may spell a name with escapes ("pay\u006coad"): at most 6 bytes a letter.
  if (length > 8 * 6) return OTHER;
  let escaped = false;
  for (let at = start + 1; at < end - 1; at++) if (b[at] === BACKSLASH) escaped = true;
  if (!escaped) return OTHER;
  const name = JSON.parse(b.toString('utf8', start, end)) as string;
  if (name === 'payload') return PAYLOAD;
  if (name === 'id') return ID;
  if (name === 'messages') return MESSAGES;
  return OTHER;
}

/** A key as the client wrote it, for an error message: decoded, and cut short if it is long. */
function keyName(b: Buffer, start: number, end: number): string {
  if (end - start > 200) return `${b.toString('utf8', start + 1, start + 65)}…`;
  return JSON.parse(b.toString('utf8', start, end)) as string;
}

/** The model's `uuid` (the fuzz test holds the two together). */
const ANY_UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The id whose JSON value is at [start, end), in lower case, as Postgres prints it; undefined if it is not a UUID. */
function uuidAt(b: Buffer, start: number, end: number): string | undefined {
  const length = end - start;
  if (b[start] !== QUOTE || length < 38 || length > 36 * 6 + 2) return undefined;
  // Written plainly, a UUID is 36 ASCII bytes; with escapes ("\u0030..."), longer.
  const text =
    length === 38
      ? b.toString('latin1', start + 1, end - 1)
      : (JSON.parse(b.toString('utf8', start, end)) as string);
  if (LOWER_UUID.test(text)) return text;
  if (ANY_UUID.test(text)) return text.toLowerCase();
  return undefined;
}

/** Field errors, up to MAX_ERRORS. */
class Errors {
  readonly list: FieldError[] = [];
  add(field: string, message: string): void {
    if (this.list.length < MAX_ERRORS) this.list.push({ field, message });
  }
}

interface Messages extends PublishBatch {
  /** Elements of the array, messages or not. */
  count: number;
  errors: Errors;
  tooLarge: Errors;
  /** Index just past the array. */
  end: number;
}

type Range = [start: number, end: number];

/** Reads one publish body; where it is tells an error which field it is about. */
class PublishBodyReader {
  /** The message being read (-1: none), and the key whose value is being read (-1: none). */
  private message = -1;
  private keyStart = -1;
  private keyEnd = -1;

  constructor(
    private readonly b: Buffer,
    private readonly limits: PublishLimits,
  ) {}

  read(): PublishBatch {
    const { b } = this;
    const bom = b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;
    let at = skipSpace(b, bom ? 3 : 0);
    if (b[at] !== OPEN_OBJECT) {
      // Malformed JSON is named as such before its shape is.
      this.expectEnd(endOfValue(b, at));
      throw new PublishRefused('invalid_message', 400, [
        { field: 'body', message: 'must be an object: {"payload": ...} or {"messages": [...]}' },
      ]);
    }
    const unknown = new Errors();
    // Set by a "messages" key (undefined: its value is not an array), whatever else the object holds.
    let messages: Messages | undefined;
    let batch = false;
    let id: Range | undefined;
    let payload: Range | undefined;
    at = skipSpace(b, at + 1);
    if (b[at] === CLOSE_OBJECT) at++;
    else {
      for (;;) {
        if (b[at] !== QUOTE) throw new JsonSyntax(at);
        const keyStart = at;
        const keyEnd = endOfString(b, keyStart);
        const valueAt = valueAfterKey(b, keyEnd);
        this.keyStart = keyStart;
        this.keyEnd = keyEnd;
        const kind = keyKind(b, keyStart, keyEnd);
        if (kind === MESSAGES) {
          batch = true;
          messages = b[valueAt] === OPEN_ARRAY ? this.readMessages(valueAt) : undefined;
          at = messages ? messages.end : endOfValue(b, valueAt);
        } else {
          at = endOfValue(b, valueAt);
          if (kind === ID) id = [valueAt, at];
          else if (kind === PAYLOAD) payload = [valueAt, at];
          else unknown.add(keyName(b, keyStart, keyEnd), 'is not a known field');
        }
        at = skipSpace(b, at);
        if (b[at] === CLOSE_OBJECT) break;
        if (b[at] !== COMMA) throw new JsonSyntax(at);
        at = skipSpace(b, at + 1);
      }
      at++;
    }
    this.expectEnd(at);
    return batch ? this.batch(messages, unknown, id, payload) : this.single(unknown, id, payload);
  }

  /** `{"messages": [...]}`: that one key, an array of 1 to maxMessages messages. */
  private batch(
    messages: Messages | undefined,
    unknown: Errors,
    id: Range | undefined,
    payload: Range | undefined,
  ): PublishBatch {
    const errors = unknown;
    if (id) errors.add('id', 'is not a known field');
    if (payload) errors.add('payload', 'is not a known field');
    if (!messages) errors.add('messages', 'must be an array of messages');
    else if (messages.count === 0) errors.add('messages', 'must contain at least one message');
    for (const error of messages?.errors.list ?? []) errors.add(error.field, error.message);
    this.refuse(errors, messages?.tooLarge);
    const { ids, payloads } = messages as Messages;
    return { ids, payloads };
  }

  /** `{"id"?, "payload"}`: one message. */
  private single(unknown: Errors, id: Range | undefined, payload: Range | undefined): PublishBatch {
    const errors = unknown;
    const tooLarge = new Errors();
    const uuid = id && uuidAt(this.b, ...id);
    if (id && !uuid) errors.add('id', 'must be a UUID');
    if (!payload) errors.add('payload', 'is required');
    else if (payload[1] - payload[0] > this.limits.maxPayloadBytes) tooLarge.add('payload', this.tooLarge());
    this.refuse(errors, tooLarge);
    return { ids: [uuid], payloads: [this.b.subarray(...(payload as Range))] };
  }

  /** A wrong shape first (400), as the schema answers; then payloads over the limit (413). */
  private refuse(errors: Errors, tooLarge: Errors | undefined): void {
    if (errors.list.length > 0) throw new PublishRefused('invalid_message', 400, errors.list);
    if (tooLarge && tooLarge.list.length > 0)
      throw new PublishRefused('payload_too_large', 413, tooLarge.list, `${describe(tooLarge.list)}.`);
  }

  private tooLarge(): string {
    return `must be at most ${this.limits.maxPayloadBytes} bytes of JSON`;
  }

  /** The array at `i`. Stops at the element past maxMessages, before reading it or anything after. */
  private readMessages(i: number): Messages {
    const { b } = this;
    const out: Messages = {
      ids: [],
      payloads: [],
      count: 0,
      errors: new Errors(),
      tooLarge: new Errors(),
      end: 0,
    };
    let at = skipSpace(b, i + 1);
    if (b[at] !== CLOSE_ARRAY) {
      for (;;) {
        if (out.count === this.limits.maxMessages) {
          const message = `must contain at most ${this.limits.maxMessages} messages`;
          throw new PublishRefused('too_many_messages', 400, [{ field: 'messages', message }]);
        }
        this.message = out.count++;
        at = skipSpace(b, this.readMessage(at, out));
        if (b[at] === CLOSE_ARRAY) break;
        if (b[at] !== COMMA) throw new JsonSyntax(at);
        at = skipSpace(b, at + 1);
      }
    }
    this.message = -1;
    out.end = at + 1;
    return out;
  }

  /** The message `{"id"?, "payload"}` at `i`; returns the index just past it. */
  private readMessage(i: number, out: Messages): number {
    const { b } = this;
    const index = this.message;
    this.keyStart = -1;
    if (b[i] !== OPEN_OBJECT) {
      const end = endOfValue(b, i);
      out.errors.add(`messages[${index}]`, 'must be an object: {"id"?, "payload"}');
      return end;
    }
    let idStart = -1;
    let idEnd = -1;
    let payloadStart = -1;
    let payloadEnd = -1;
    let at = skipSpace(b, i + 1);
    if (b[at] !== CLOSE_OBJECT) {
      for (;;) {
        if (b[at] !== QUOTE) throw new JsonSyntax(at);
        const keyStart = at;
        const keyEnd = endOfString(b, keyStart);
        const valueAt = valueAfterKey(b, keyEnd);
        this.keyStart = keyStart;
        this.keyEnd = keyEnd;
        at = endOfValue(b, valueAt);
        const kind = keyKind(b, keyStart, keyEnd);
        if (kind === PAYLOAD) {
          payloadStart = valueAt;
          payloadEnd = at;
        } else if (kind === ID) {
          idStart = valueAt;
          idEnd = at;
        } else out.errors.add(`messages[${index}].${keyName(b, keyStart, keyEnd)}`, 'is not a known field');
        at = skipSpace(b, at);
        if (b[at] === CLOSE_OBJECT) break;
        if (b[at] !== COMMA) throw new JsonSyntax(at);
        at = skipSpace(b, at + 1);
      }
    }
    const id = idStart < 0 ? undefined : uuidAt(b, idStart, idEnd);
    if (idStart >= 0 && !id) out.errors.add(`messages[${index}].id`, 'must be a UUID');
    if (payloadStart < 0) out.errors.add(`messages[${index}].payload`, 'is required');
    else {
      if (payloadEnd - payloadStart > this.limits.maxPayloadBytes)
        out.tooLarge.add(`messages[${index}].payload`, this.tooLarge());
      out.ids.push(id);
      out.payloads.push(b.subarray(payloadStart, payloadEnd));
    }
    return at + 1;
  }

  private expectEnd(at: number): void {
    const end = skipSpace(this.b, at);
    if (end !== this.b.length) throw new JsonSyntax(end);
  }

  /** The field whose value was being read. */
  field(): string {
    const key = this.keyStart < 0 ? '' : keyName(this.b, this.keyStart, this.keyEnd);
    if (this.message < 0) return key || 'body';
    return key ? `messages[${this.message}].${key}` : `messages[${this.message}]`;
  }
}

/**
 * The ids and payloads of a publish body, `{"id"?, "payload"}` or `{"messages": [...]}`, or a
 * PublishRefused naming what is wrong: 400 for JSON that is not well formed, nests too deep, has
 * the wrong shape or more than `maxMessages` messages (found at the first one past it, before the
 * rest is read); 413 for a payload over `maxPayloadBytes`.
 */
export function readPublishBody(body: Buffer, limits: PublishLimits): PublishBatch {
  if (!isUtf8(body)) {
    throw new PublishRefused('invalid_json', 400, [{ field: 'body', message: 'is not UTF-8 text' }]);
  }
  const reader = new PublishBodyReader(body, limits);
  try {
    return reader.read();
  } catch (error) {
    if (error instanceof JsonSyntax) {
      const byte = body[error.at];
      const found =
        byte === undefined
          ? 'it ends early'
          : byte >= 0x20 && byte < 0x7f
            ? `unexpected ${JSON.stringify(String.fromCharCode(byte))}`
            : `unexpected byte 0x${byte.toString(16)}`;
      throw new PublishRefused(
        'invalid_json',
        400,
        [{ field: 'body', message: 'is not valid JSON' }],
        `The body is not valid JSON: ${found} (byte ${error.at}).`,
      );
    }
    if (error instanceof TooDeep) {
      const message = `must not nest more than ${MAX_NESTING} levels deep`;
      throw new PublishRefused('too_deep', 400, [{ field: reader.field(), message }]);
    }
    throw error;
  }
}
