import { type Kysely, sql } from 'kysely';
import type { Pool } from 'pg';
import type { GatewayDatabase } from '../gateway.tables';
import type { SpanLink, StoredSpan } from './otlp-decoder';

/** A stored span, as read back. */
export interface SpanRow {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  service: string;
  name: string;
  kind: number;
  start: Date;
  end: Date;
  durationMs: number;
  statusCode: number;
  statusMessage: string | null;
  attributes: Record<string, unknown>;
  links: SpanLink[];
}

/** A span of another trace that links to a trace. */
export interface LinkingSpan {
  traceId: string;
  spanId: string;
  service: string;
  name: string;
  start: Date;
}

/**
 * Stores one export's spans in one statement: the batch travels as a single JSON parameter that
 * json_to_recordset unpacks, and the statement is named, so each connection parses it once. A span
 * received twice is stored once. Returns how many were new.
 */
export async function insertSpans(pool: Pool, spans: StoredSpan[]): Promise<number> {
  if (spans.length === 0) return 0;
  const result = await pool.query({
    name: 'gateway_spans_insert',
    text: `INSERT INTO gateway_spans (trace_id, span_id, parent_span_id, service, name, kind, start_time, end_time, duration_ms, status_code, status_message, attributes, links)
           SELECT "traceId", "spanId", "parentSpanId", service, name, kind, to_timestamp("startMs" / 1000), to_timestamp("endMs" / 1000),
                  "endMs" - "startMs", "statusCode", "statusMessage", attributes, links
           FROM json_to_recordset($1::json) AS s("traceId" text, "spanId" text, "parentSpanId" text, service text, name text, kind int,
                "startMs" float8, "endMs" float8, "statusCode" int, "statusMessage" text, attributes jsonb, links jsonb)
           ON CONFLICT (trace_id, span_id) DO NOTHING`,
    values: [JSON.stringify(spans)],
  });
  return result.rowCount ?? 0;
}

/** The first `limit` stored spans of a trace, in start order. */
export async function selectTraceSpans(
  db: Kysely<GatewayDatabase>,
  traceId: string,
  limit: number,
): Promise<SpanRow[]> {
  const rows = await db
    .selectFrom('gateway_spans')
    .selectAll()
    .where('trace_id', '=', traceId)
    .orderBy('start_time')
    .orderBy('span_id')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    traceId: row.trace_id,
    spanId: row.span_id,
    parentSpanId: row.parent_span_id,
    service: row.service,
    name: row.name,
    kind: row.kind,
    start: row.start_time,
    end: row.end_time,
    durationMs: row.duration_ms,
    statusCode: row.status_code,
    statusMessage: row.status_message,
    attributes: row.attributes,
    links: row.links,
  }));
}

/**
 * The first `limit` spans of other traces that link to `traceId`, in start order (through the
 * links' GIN index: a containment of `[{"traceId": ...}]`).
 */
export async function selectLinkingSpans(
  db: Kysely<GatewayDatabase>,
  traceId: string,
  limit: number,
): Promise<LinkingSpan[]> {
  const rows = await db
    .selectFrom('gateway_spans')
    .select(['trace_id', 'span_id', 'service', 'name', 'start_time'])
    .where(sql<boolean>`links @> ${JSON.stringify([{ traceId }])}::jsonb`)
    .where('trace_id', '<>', traceId)
    .orderBy('start_time')
    .orderBy('span_id')
    .limit(limit)
    .execute();
  return rows.map((row) => ({
    traceId: row.trace_id,
    spanId: row.span_id,
    service: row.service,
    name: row.name,
    start: row.start_time,
  }));
}

/**
 * Deletes at most `limit` spans that started before `before`; returns how many. Rows are picked by
 * ctid so each call is one short statement, however many rows have expired.
 */
export async function deleteSpansBefore(
  db: Kysely<GatewayDatabase>,
  before: Date,
  limit: number,
): Promise<number> {
  const result = await sql`
    DELETE FROM gateway_spans
    WHERE ctid IN (SELECT ctid FROM gateway_spans WHERE start_time < ${before} LIMIT ${limit})
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}
