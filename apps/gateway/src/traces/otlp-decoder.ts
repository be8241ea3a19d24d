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
        status: { type: 'Status', id: 15 },
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
  /** Something of it was cut to SPAN_LIMITS. */
  truncated?: boolean;
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
interface RequestShape {
  resourceSpans?: {
    resource?: { attributes?: KeyValue[] };
    scopeSpans?: {
      spans?: {
        traceId?: string;
        spanId?: string;
        parentSpanId?: string;
        name?: string;
        kind?: number;
        startTimeUnixNano?: string | number;
        endTimeUnixNano?: string | number;
        attributes?: KeyValue[];
        status?: { code?: number; message?: string };
      }[];
    }[];
  }[];
}

/**
 * What one span keeps, so that no export and no trace read holds unbounded memory (every span of
 * an export repeats its resource's service name, and a trace is read whole): a service name is cut
 * at 256 characters, a span's name and status message at 1,024, a string attribute at 4,096; a
 * span keeps at most 128 attributes (OpenTelemetry SDKs' default count limit), 16,384 characters
 * of them in all, nested at most 4 deep. A span so cut says so: `gateway.truncated: true`.
 */
export const SPAN_LIMITS = {
  service: 256,
  text: 1_024,
  value: 4_096,
  attributes: 128,
  budget: 16_384,
  nesting: 4,
} as const;

/** How much of a span's attributes is left to keep, and whether anything was cut. */
interface Budget {
  left: number;
  cut: boolean;
}

/**
 * Postgres stores no NUL in text or jsonb: one in a span's strings becomes U+FFFD. Longer than
 * `max`, the text is cut (never inside a surrogate pair, which Postgres would refuse).
 */
function text(value: string, max: number = SPAN_LIMITS.text, budget?: Budget): string {
  let out = value.includes('\u0000') ? value.replaceAll('\u0000', '\ufffd') : value;
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
    const items = value.arrayValue?.values ?? [];
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

function attributes(list: KeyValue[] | undefined, budget: Budget, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let kept = 0;
  for (const { key, value } of list ?? []) {
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

/** The resource's `service.name`, or "unknown"; its other attributes are not kept. */
function serviceName(list: KeyValue[] | undefined): string {
  const value = list?.find((kv) => kv.key === 'service.name')?.value?.stringValue;
  return typeof value === 'string' && value ? text(value, SPAN_LIMITS.service) : 'unknown';
}

/** How far ahead of this gateway's clock a span may start: retention counts from the start. */
const MAX_AHEAD_MS = 24 * 3_600_000;

function nanosToMs(nanos: string | number | undefined, field: string): number {
  const ms = Number(BigInt(nanos ?? 0) / 1000n) / 1000;
  if (!(ms >= 0 && ms <= MAX_TIMESTAMP_MS)) throw new Error(`a span's ${field} is outside 1970 to 9999`);
  return ms;
}

/** An enum field: an integer from 0 to `max` (OTLP/JSON sends enums as integers). */
function enumValue(value: unknown, field: string, max: number): number {
  if (value === undefined || value === null) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max)
    throw new Error(`a span's ${field} must be an integer from 0 to ${max}`);
  return value;
}

function optionalText(value: unknown, field: string, budget: Budget): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new Error(`a span's ${field} must be a string`);
  return text(value, SPAN_LIMITS.text, budget);
}
const HEX_ID = /^[0-9a-f]+$/;

/** Spans of a decoded request; ids become lower-case hex whatever the encoding. */
function spansOf(
  request: RequestShape,
  id: (value: string | undefined) => string,
  now: number,
): StoredSpan[] {
  const spans: StoredSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const service = serviceName(resourceSpans.resource?.attributes);
    for (const scope of resourceSpans.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        const traceId = id(span.traceId);
        const spanId = id(span.spanId);
        if (traceId.length !== 32 || spanId.length !== 16)
          throw new Error('a span has an invalid trace or span id');
        const parent = id(span.parentSpanId);
        const startMs = nanosToMs(span.startTimeUnixNano, 'startTimeUnixNano');
        if (startMs > now + MAX_AHEAD_MS)
          throw new Error("a span's startTimeUnixNano is more than a day ahead of the gateway's clock");
        const budget: Budget = { left: SPAN_LIMITS.budget, cut: false };
        const stored: StoredSpan = {
          traceId,
          spanId,
          parentSpanId: parent.length === 16 ? parent : null,
          service,
          name: optionalText(span.name, 'name', budget) ?? '',
          kind: enumValue(span.kind, 'kind', 5),
          startMs,
          endMs: nanosToMs(span.endTimeUnixNano, 'endTimeUnixNano'),
          statusCode: enumValue(span.status?.code, 'status.code', 2),
          statusMessage: optionalText(span.status?.message, 'status.message', budget),
          attributes: attributes(span.attributes, budget),
        };
        if (budget.cut) {
          stored.attributes['gateway.truncated'] = true;
          stored.truncated = true;
        }
        spans.push(stored);
      }
    }
  }
  return spans;
}

export function decodeProtobuf(body: Buffer, now = Date.now()): StoredSpan[] {
  const message = Request.decode(body);
  const request = Request.toObject(message, {
    longs: String,
    bytes: String,
    defaults: false,
  }) as RequestShape;
  return spansOf(request, (value) => (value ? Buffer.from(value, 'base64').toString('hex') : ''), now);
}

/** OTLP/JSON: ids are hex strings (per the OTLP JSON mapping), times are decimal strings. */
export function decodeJson(body: Buffer, now = Date.now()): StoredSpan[] {
  const request = JSON.parse(body.toString('utf8')) as RequestShape;
  if (
    typeof request !== 'object' ||
    request === null ||
    Array.isArray(request) ||
    (request.resourceSpans !== undefined && !Array.isArray(request.resourceSpans))
  ) {
    throw new Error('not an ExportTraceServiceRequest');
  }
  return spansOf(
    request,
    (value) => {
      const hex = (value ?? '').toLowerCase();
      return HEX_ID.test(hex) ? hex : '';
    },
    now,
  );
}
