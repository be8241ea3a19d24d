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

/** Postgres stores no NUL in text or jsonb: one in a span's strings becomes U+FFFD. */
const text = (value: string) => (value.includes('\u0000') ? value.replaceAll('\u0000', '\ufffd') : value);

function anyValue(value: AnyValue | undefined): unknown {
  if (!value) return null;
  if (value.stringValue !== undefined)
    return typeof value.stringValue === 'string' ? text(value.stringValue) : null;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue) return (value.arrayValue.values ?? []).map(anyValue);
  if (value.kvlistValue) return attributes(value.kvlistValue.values);
  if (value.bytesValue !== undefined) return value.bytesValue;
  return null;
}

function attributes(list: KeyValue[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { key, value } of list ?? [])
    if (typeof key === 'string' && key) out[text(key)] = anyValue(value);
  return out;
}

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

function optionalText(value: unknown, field: string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new Error(`a span's ${field} must be a string`);
  return text(value);
}
const HEX_ID = /^[0-9a-f]+$/;

/** Spans of a decoded request; ids become lower-case hex whatever the encoding. */
function spansOf(request: RequestShape, id: (value: string | undefined) => string): StoredSpan[] {
  const spans: StoredSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributes(resourceSpans.resource?.attributes);
    const service = typeof resource['service.name'] === 'string' ? resource['service.name'] : 'unknown';
    for (const scope of resourceSpans.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        const traceId = id(span.traceId);
        const spanId = id(span.spanId);
        if (traceId.length !== 32 || spanId.length !== 16)
          throw new Error('a span has an invalid trace or span id');
        const parent = id(span.parentSpanId);
        spans.push({
          traceId,
          spanId,
          parentSpanId: parent.length === 16 ? parent : null,
          service,
          name: optionalText(span.name, 'name') ?? '',
          kind: enumValue(span.kind, 'kind', 5),
          startMs: nanosToMs(span.startTimeUnixNano, 'startTimeUnixNano'),
          endMs: nanosToMs(span.endTimeUnixNano, 'endTimeUnixNano'),
          statusCode: enumValue(span.status?.code, 'status.code', 2),
          statusMessage: optionalText(span.status?.message, 'status.message'),
          attributes: attributes(span.attributes),
        });
      }
    }
  }
  return spans;
}

export function decodeProtobuf(body: Buffer): StoredSpan[] {
  const message = Request.decode(body);
  const request = Request.toObject(message, {
    longs: String,
    bytes: String,
    defaults: false,
  }) as RequestShape;
  return spansOf(request, (value) => (value ? Buffer.from(value, 'base64').toString('hex') : ''));
}

/** OTLP/JSON: ids are hex strings (per the OTLP JSON mapping), times are decimal strings. */
export function decodeJson(body: Buffer): StoredSpan[] {
  const request = JSON.parse(body.toString('utf8')) as RequestShape;
  if (
    typeof request !== 'object' ||
    request === null ||
    Array.isArray(request) ||
    (request.resourceSpans !== undefined && !Array.isArray(request.resourceSpans))
  ) {
    throw new Error('not an ExportTraceServiceRequest');
  }
  return spansOf(request, (value) => {
    const text = (value ?? '').toLowerCase();
    return HEX_ID.test(text) ? text : '';
  });
}
