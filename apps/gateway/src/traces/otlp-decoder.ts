import protobuf from 'protobufjs';
import { MAX_TIMESTAMP_MS } from '@gpu-telemetry/model';

/**
 * The part of OTLP's ExportTraceServiceRequest the gateway stores, as a protobufjs schema (field
 * numbers from opentelemetry-proto's trace/v1 and common/v1). Unknown fields are skipped.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    ExportTraceServiceRequest: {
      fields: { resourceSpans: { rule: 'repeated', type: 'ResourceSpans', id: 1 } },
    },
    ResourceSpans: {
      fields: {
        resource: { type: 'Resource', id: 1 },
        scopeSpans: { rule: 'repeated', type: 'ScopeSpans', id: 2 },
      },
    },
    Resource: { fields: { attributes: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
    ScopeSpans: { fields: { spans: { rule: 'repeated', type: 'Span', id: 2 } } },
    Span: {
      fields: {
        traceId: { type: 'bytes', id: 1 },
        spanId: { type: 'bytes', id: 2 },
        parentSpanId: { type: 'bytes', id: 4 },
        name: { type: 'string', id: 5 },
        kind: { type: 'int32', id: 6 },
        startTimeUnixNano: { type: 'fixed64', id: 7 },
        endTimeUnixNano: { type: 'fixed64', id: 8 },
        attributes: { rule: 'repeated', type: 'KeyValue', id: 9 },
        links: { rule: 'repeated', type: 'Link', id: 13 },
        status: { type: 'Status', id: 15 },
      },
    },
    Link: {
      fields: {
        traceId: { type: 'bytes', id: 1 },
        spanId: { type: 'bytes', id: 2 },
        attributes: { rule: 'repeated', type: 'KeyValue', id: 4 },
      },
    },
    Status: { fields: { message: { type: 'string', id: 2 }, code: { type: 'int32', id: 3 } } },
    KeyValue: { fields: { key: { type: 'string', id: 1 }, value: { type: 'AnyValue', id: 2 } } },
    AnyValue: {
      fields: {
        stringValue: { type: 'string', id: 1 },
        boolValue: { type: 'bool', id: 2 },
        intValue: { type: 'int64', id: 3 },
        doubleValue: { type: 'double', id: 4 },
        arrayValue: { type: 'ArrayValue', id: 5 },
        kvlistValue: { type: 'KeyValueList', id: 6 },
        bytesValue: { type: 'bytes', id: 7 },
      },
    },
    ArrayValue: { fields: { values: { rule: 'repeated', type: 'AnyValue', id: 1 } } },
    KeyValueList: { fields: { values: { rule: 'repeated', type: 'KeyValue', id: 1 } } },
  },
});
const Request = root.lookupType('ExportTraceServiceRequest');
root.resolveAll();

/**
 * The most messages (spans, attributes, their values, links...) one export may hold, counted
 * before it is decoded: decoding makes two objects of each, so an export of millions of empty
 * attributes (2 bytes each on the wire, a few kB gzipped) would take the gateway's event loop and
 * hundreds of MB. An SDK's export of 512 spans with 30 attributes each holds ~32,000.
 */
export const MAX_EXPORT_ELEMENTS = 262_144;
/** How deep messages may nest (a span is 4 deep, a value's lists 3 deeper each; 4 of them are kept). */
const MAX_EXPORT_DEPTH = 64;

/** For each message type of the schema, its fields that are messages: field number to type. */
const NESTED = new Map<protobuf.Type, Map<number, protobuf.Type>>();
for (const type of [Request, ...root.nestedArray]) {
  if (!(type instanceof protobuf.Type)) continue;
  const fields = new Map<number, protobuf.Type>();
  for (const field of type.fieldsArray)
    if (field.resolvedType instanceof protobuf.Type) fields.set(field.id, field.resolvedType);
  NESTED.set(type, fields);
}

/**
 * Counts an export's messages on the wire, without building any, and refuses one past
 * MAX_EXPORT_ELEMENTS or MAX_EXPORT_DEPTH (a SpanFieldError naming the body). What is malformed is
 * left for the decoder to name.
 */
function checkExportSize(body: Buffer): void {
  const reader = protobuf.Reader.create(body);
  const stack: { type: protobuf.Type; end: number }[] = [{ type: Request, end: body.length }];
  let elements = 0;
  try {
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as (typeof stack)[number];
      if (reader.pos >= top.end) {
        stack.pop();
        continue;
      }
      const tag = reader.uint32();
      const nested = (NESTED.get(top.type) as Map<number, protobuf.Type>).get(tag >>> 3);
      if (nested === undefined || (tag & 7) !== 2) {
        reader.skipType(tag & 7);
        continue;
      }
      const length = reader.uint32();
      if (++elements > MAX_EXPORT_ELEMENTS)
        throw new SpanFieldError(
          'body',
          `must hold at most ${MAX_EXPORT_ELEMENTS} spans, attributes, values and links in all`,
        );
      if (stack.length >= MAX_EXPORT_DEPTH)
        throw new SpanFieldError('body', `must nest values at most ${MAX_EXPORT_DEPTH} deep`);
      stack.push({ type: nested, end: Math.min(top.end, reader.pos + length) });
    }
  } catch (error) {
    if (error instanceof SpanFieldError) throw error;
    // Malformed: Request.decode says how.
  }
}

/**
 * The same bound for OTLP/JSON, before JSON.parse builds anything: objects counted by their
 * opening braces (those inside strings too, so a little over), at twice the protobuf bound.
 */
function checkJsonSize(body: Buffer): void {
  let braces = 0;
  for (let at = body.indexOf(0x7b); at !== -1; at = body.indexOf(0x7b, at + 1)) {
    if (++braces > 2 * MAX_EXPORT_ELEMENTS)
      throw new SpanFieldError('body', `must hold at most ${2 * MAX_EXPORT_ELEMENTS} objects in all`);
  }
}

export interface StoredSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  service: string;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  statusCode: number;
  statusMessage: string | null;
  attributes: Record<string, unknown>;
  /** Spans of other traces (or this one) it links to: a message's publish, for its consumer's span. */
  links: SpanLink[];
  /** Something of it was cut to SPAN_LIMITS. */
  truncated?: boolean;
}

export interface SpanLink {
  traceId: string;
  spanId: string;
  attributes?: Record<string, unknown>;
}

interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
  bytesValue?: string;
}
interface KeyValue {
  key?: string;
  value?: AnyValue;
}
/** A span as decoded; from OTLP/JSON any field may hold anything, and is checked as it is read. */
interface SpanShape {
  traceId?: unknown;
  spanId?: unknown;
  parentSpanId?: unknown;
  name?: unknown;
  kind?: unknown;
  startTimeUnixNano?: unknown;
  endTimeUnixNano?: unknown;
  attributes?: unknown;
  links?: unknown;
  status?: unknown;
}
interface RequestShape {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: { spans?: SpanShape[] }[];
  }[];
}

/**
 * What one span keeps, so that no export and no trace read holds unbounded memory (every span of
 * an export repeats its resource's service name, and a trace is read whole): a service name is cut
 * at 256 characters, a span's name and status message at 1,024, a string attribute at 4,096; a
 * span keeps at most 128 attributes (OpenTelemetry SDKs' default count limit), 16,384 characters
 * of them in all (its links' attributes included), nested at most 4 deep, and at most 128 links.
 * A span so cut says so: `gateway.truncated: true`.
 */
export const SPAN_LIMITS = {
  service: 256,
  text: 1_024,
  value: 4_096,
  attributes: 128,
  budget: 16_384,
  nesting: 4,
  links: 128,
} as const;

/** How much of a span's attributes is left to keep, and whether anything was cut. */
interface Budget {
  left: number;
  cut: boolean;
}

/** ES2024's String.prototype.isWellFormed and toWellFormed (Node 20 on), beyond this project's lib. */
type Utf16 = string & { isWellFormed(): boolean; toWellFormed(): string };

/**
 * Postgres stores no NUL and no lone UTF-16 surrogate (half an emoji, as OTLP/JSON can write
 * `\ud83d`) in text or jsonb: each in a span's strings becomes U+FFFD. Longer than `max`, the text
 * is cut (never inside a surrogate pair, which would leave one alone).
 */
function text(value: string, max: number = SPAN_LIMITS.text, budget?: Budget): string {
  let out = (value as Utf16).isWellFormed() ? value : (value as Utf16).toWellFormed();
  if (out.includes('\u0000')) out = out.replaceAll('\u0000', '\ufffd');
  if (out.length > max) {
    const high = out.charCodeAt(max - 1);
    out = out.slice(0, high >= 0xd800 && high <= 0xdbff ? max - 1 : max);
    if (budget) budget.cut = true;
  }
  return out;
}

/** An int64 as decoded protobuf and OTLP/JSON write it: a decimal string, or a number in JSON. */
function intOf(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) ? value : null;
  return typeof value === 'string' && /^-?\d{1,20}$/.test(value) ? Number(value) : null;
}

/** A double; OTLP/JSON writes the three that JSON has no number for as strings, kept so. */
function doubleOf(value: unknown): number | string | null {
  if (typeof value === 'number') return value;
  return value === 'NaN' || value === 'Infinity' || value === '-Infinity' ? value : null;
}

function anyValue(value: AnyValue | undefined, budget: Budget, depth: number): unknown {
  if (!value) return null;
  budget.left -= 8;
  if (value.stringValue !== undefined || value.bytesValue !== undefined) {
    const raw = value.stringValue ?? value.bytesValue;
    if (typeof raw !== 'string') return null;
    const kept = text(raw, Math.max(0, Math.min(SPAN_LIMITS.value, budget.left)), budget);
    budget.left -= kept.length;
    return kept;
  }
  // OTLP/JSON is whatever the sender wrote: a value of the wrong type is dropped (null), never
  // stored as given (an object there would escape every limit above).
  if (value.boolValue !== undefined) return typeof value.boolValue === 'boolean' ? value.boolValue : null;
  if (value.intValue !== undefined) return intOf(value.intValue);
  if (value.doubleValue !== undefined) return doubleOf(value.doubleValue);
  if (value.arrayValue || value.kvlistValue) {
    if (depth >= SPAN_LIMITS.nesting) {
      budget.cut = true;
      return null;
    }
    if (value.kvlistValue) return attributes(value.kvlistValue.values, budget, depth + 1);
    const values = value.arrayValue?.values;
    const items = Array.isArray(values) ? values : [];
    const out: unknown[] = [];
    for (const item of items) {
      if (out.length >= SPAN_LIMITS.attributes || budget.left <= 0) {
        budget.cut = true;
        break;
      }
      out.push(anyValue(item, budget, depth + 1));
    }
    return out;
  }
  return null;
}

/** A list of key-values: from OTLP/JSON anything that is not one is dropped, as a value of the wrong type is. */
function attributes(list: unknown, budget: Budget, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!Array.isArray(list)) return out;
  let kept = 0;
  for (const item of list as (KeyValue | null)[]) {
    const key = item?.key;
    const value = item?.value;
    if (typeof key !== 'string' || !key) continue;
    if (kept >= SPAN_LIMITS.attributes || budget.left <= 0) {
      budget.cut = true;
      break;
    }
    const name = text(key, SPAN_LIMITS.service, budget);
    budget.left -= name.length;
    out[name] = anyValue(value, budget, depth);
    kept++;
  }
  return out;
}

/** A part of a request that is not what OTLP says: `field` is its path, e.g. resourceSpans[0].scopeSpans[1].spans[2].traceId. */
export class SpanFieldError extends Error {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

/** A repeated field as OTLP/JSON may send it: absent is empty; anything but an array is refused. */
function listAt(value: unknown, field: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new SpanFieldError(field, 'must be an array');
  return value;
}

/** A message field: absent is empty; anything but an object is refused (an item of a list must be there). */
function objectAt<T extends object>(value: unknown, field: string, item = false): Partial<T> {
  if ((value === undefined || value === null) && !item) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new SpanFieldError(field, 'must be an object');
  return value as Partial<T>;
}

/** The resource's `service.name`, or "unknown"; its other attributes are not kept. */
function serviceName(list: unknown[]): string {
  const named = list.find((kv) => (kv as KeyValue | null)?.key === 'service.name') as KeyValue | undefined;
  const value = named?.value?.stringValue;
  return typeof value === 'string' && value ? text(value, SPAN_LIMITS.service) : 'unknown';
}

/** How far ahead of this gateway's clock a span may start: retention counts from the start. */
const MAX_AHEAD_MS = 24 * 3_600_000;

/** Nanoseconds since 1970 as OTLP writes them: a decimal string, or a whole number in JSON. */
function nanosToMs(nanos: unknown, field: string): number {
  // A JSON number of nanoseconds is past 2^53 (1.7e18): whole, if not exact to the nanosecond.
  const whole =
    nanos === undefined ||
    nanos === null ||
    (typeof nanos === 'string' && /^\d{1,30}$/.test(nanos)) ||
    (typeof nanos === 'number' && Number.isInteger(nanos) && nanos >= 0);
  if (!whole) throw new SpanFieldError(field, 'must be a whole number of nanoseconds since 1970');
  const ms = Number(BigInt(nanos ?? 0) / 1000n) / 1000;
  if (!(ms <= MAX_TIMESTAMP_MS)) throw new SpanFieldError(field, 'is outside 1970 to 9999');
  return ms;
}

/** An enum field: an integer from 0 to `max` (OTLP/JSON sends enums as integers). */
function enumValue(value: unknown, field: string, max: number): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max)
    throw new SpanFieldError(field, `must be an integer from 0 to ${max}`);
  return value;
}

function optionalText(value: unknown, field: string, budget: Budget): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new SpanFieldError(field, 'must be a string');
  return text(value, SPAN_LIMITS.text, budget);
}
const HEX_ID = /^[0-9a-f]+$/;

/**
 * Spans of a decoded request; ids become lower-case hex whatever the encoding (`id` gives '' for
 * one that is not). A part that is not what OTLP says is refused with its path (SpanFieldError).
 */
function spansOf(request: RequestShape, id: (value: unknown) => string, now: number): StoredSpan[] {
  const spans: StoredSpan[] = [];
  const resources = listAt(request.resourceSpans, 'resourceSpans');
  for (let r = 0; r < resources.length; r++) {
    const at = `resourceSpans[${r}]`;
    const resourceSpans = objectAt<NonNullable<RequestShape['resourceSpans']>[number]>(
      resources[r],
      at,
      true,
    );
    const resource = objectAt<{ attributes?: KeyValue[] }>(resourceSpans.resource, `${at}.resource`);
    const service = serviceName(listAt(resource.attributes, `${at}.resource.attributes`));
    const scopes = listAt(resourceSpans.scopeSpans, `${at}.scopeSpans`);
    for (let c = 0; c < scopes.length; c++) {
      const scope = objectAt<{ spans?: SpanShape[] }>(scopes[c], `${at}.scopeSpans[${c}]`, true);
      const list = listAt(scope.spans, `${at}.scopeSpans[${c}].spans`);
      for (let k = 0; k < list.length; k++) {
        const path = `${at}.scopeSpans[${c}].spans[${k}]`;
        try {
          spans.push(spanOf(objectAt<SpanShape>(list[k], '', true), service, id, now));
        } catch (error) {
          if (!(error instanceof SpanFieldError)) throw error;
          throw new SpanFieldError(error.field ? `${path}.${error.field}` : path, error.problem);
        }
      }
    }
  }
  return spans;
}

/** All zeros is no id (OTLP): a span must have a trace id and a span id. */
const ZERO_ID = /^0+$/;

/** A trace or span id of `bytes` bytes (as hex), refused at `field` when it is not one or all zeros. */
function idAt(hex: string, field: string, bytes: 16 | 8): string {
  if (hex.length !== bytes * 2 || ZERO_ID.test(hex))
    throw new SpanFieldError(field, `must be ${bytes} bytes (${bytes * 2} hex digits), not all zero`);
  return hex;
}

function spanOf(
  span: Partial<SpanShape>,
  service: string,
  id: (value: unknown) => string,
  now: number,
): StoredSpan {
  const traceId = idAt(id(span.traceId), 'traceId', 16);
  const spanId = idAt(id(span.spanId), 'spanId', 8);
  const parent = id(span.parentSpanId);
  const startMs = nanosToMs(span.startTimeUnixNano, 'startTimeUnixNano');
  if (startMs > now + MAX_AHEAD_MS)
    throw new SpanFieldError('startTimeUnixNano', "is more than a day ahead of the gateway's clock");
  const status = objectAt<{ code?: unknown; message?: unknown }>(span.status, 'status');
  const budget: Budget = { left: SPAN_LIMITS.budget, cut: false };
  const stored: StoredSpan = {
    traceId,
    spanId,
    parentSpanId: parent.length === 16 && !ZERO_ID.test(parent) ? parent : null,
    service,
    name: optionalText(span.name, 'name', budget) ?? '',
    kind: enumValue(span.kind, 'kind', 5),
    startMs,
    endMs: nanosToMs(span.endTimeUnixNano, 'endTimeUnixNano'),
    statusCode: enumValue(status.code, 'status.code', 2),
    statusMessage: optionalText(status.message, 'status.message', budget),
    attributes: attributes(listAt(span.attributes, 'attributes'), budget),
    links: linksOf(listAt(span.links, 'links'), id, budget),
  };
  if (budget.cut) {
    stored.attributes['gateway.truncated'] = true;
    stored.truncated = true;
  }
  return stored;
}

/** A span's links, each with the ids of the span it names (checked as a span's own are). */
function linksOf(list: unknown[], id: (value: unknown) => string, budget: Budget): SpanLink[] {
  if (list.length > SPAN_LIMITS.links) budget.cut = true;
  return list.slice(0, SPAN_LIMITS.links).map((item, i) => {
    const link = objectAt<{ traceId?: unknown; spanId?: unknown; attributes?: unknown }>(
      item,
      `links[${i}]`,
      true,
    );
    const traceId = idAt(id(link.traceId), `links[${i}].traceId`, 16);
    const spanId = idAt(id(link.spanId), `links[${i}].spanId`, 8);
    const kept = attributes(listAt(link.attributes, `links[${i}].attributes`), budget);
    return Object.keys(kept).length > 0 ? { traceId, spanId, attributes: kept } : { traceId, spanId };
  });
}

export function decodeProtobuf(body: Buffer, now = Date.now()): StoredSpan[] {
  checkExportSize(body);
  const message = Request.decode(body);
  const request = Request.toObject(message, {
    longs: String,
    bytes: String,
    defaults: false,
  }) as RequestShape;
  return spansOf(
    request,
    (value) => (typeof value === 'string' && value ? Buffer.from(value, 'base64').toString('hex') : ''),
    now,
  );
}

/** OTLP/JSON: ids are hex strings (per the OTLP JSON mapping), times are decimal strings. */
export function decodeJson(body: Buffer, now = Date.now()): StoredSpan[] {
  checkJsonSize(body);
  const request = JSON.parse(body.toString('utf8')) as RequestShape;
  if (typeof request !== 'object' || request === null || Array.isArray(request)) {
    throw new Error('not an ExportTraceServiceRequest');
  }
  return spansOf(
    request,
    (value) => {
      const hex = typeof value === 'string' ? value.toLowerCase() : '';
      return HEX_ID.test(hex) ? hex : '';
    },
    now,
  );
}
