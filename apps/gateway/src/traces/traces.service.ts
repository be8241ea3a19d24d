import type { Database } from '@gpu-telemetry/db';
import { NotFoundError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';
import type { StoredSpan } from './otlp-decoder';

export interface SpanNode {
  spanId: string;
  parentSpanId: string | null;
  service: string;
  name: string;
  kind: number;
  start: string;
  end: string;
  durationMs: number;
  status: { code: number; message: string | null };
  attributes: Record<string, unknown>;
  children: SpanNode[];
}

/** Spans received over OTLP, and traces read back as trees. */
export class TracesService {
  constructor(private readonly deps: { db: Kysely<Database>; pool: Pool }) {}

  async store(spans: StoredSpan[]): Promise<number> {
    if (spans.length === 0) return 0;
    const result = await this.deps.pool.query({
      name: 'gateway_spans_insert',
      text: `INSERT INTO gateway_spans (trace_id, span_id, parent_span_id, service, name, kind, start_time, end_time, duration_ms, status_code, status_message, attributes)
             SELECT "traceId", "spanId", "parentSpanId", service, name, kind, to_timestamp("startMs" / 1000), to_timestamp("endMs" / 1000),
                    "endMs" - "startMs", "statusCode", "statusMessage", attributes
             FROM json_to_recordset($1::json) AS s("traceId" text, "spanId" text, "parentSpanId" text, service text, name text, kind int,
                  "startMs" float8, "endMs" float8, "statusCode" int, "statusMessage" text, attributes jsonb)
             ON CONFLICT (trace_id, span_id) DO NOTHING`,
      values: [JSON.stringify(spans)],
    });
    return result.rowCount ?? 0;
  }

  /** The trace's spans as trees under their roots (spans whose parent was not received are roots too). */
  async trace(
    traceId: string,
  ): Promise<{ traceId: string; spanCount: number; services: string[]; roots: SpanNode[] }> {
    const rows = await this.deps.db
      .selectFrom('gateway_spans')
      .selectAll()
      .where('trace_id', '=', traceId)
      .orderBy('start_time')
      .execute();
    if (rows.length === 0) throw new NotFoundError(`No spans of trace ${traceId} were received.`);
    const nodes = new Map<string, SpanNode>(
      rows.map((row) => [
        row.span_id,
        {
          spanId: row.span_id,
          parentSpanId: row.parent_span_id,
          service: row.service,
          name: row.name,
          kind: row.kind,
          start: row.start_time.toISOString(),
          end: row.end_time.toISOString(),
          durationMs: Math.round(row.duration_ms * 1000) / 1000,
          status: { code: row.status_code, message: row.status_message },
          attributes: row.attributes,
          children: [],
        },
      ]),
    );
    const roots: SpanNode[] = [];
    for (const node of nodes.values()) {
      const parent = node.parentSpanId ? nodes.get(node.parentSpanId) : undefined;
      if (parent) parent.children.push(node);
      else roots.push(node);
    }
    return {
      traceId,
      spanCount: rows.length,
      services: [...new Set(rows.map((r) => r.service))].sort(),
      roots,
    };
  }
}
