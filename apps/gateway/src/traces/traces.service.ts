import { NotFoundError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';
import type { GatewayDatabase } from '../gateway.tables';
import type { StoredSpan } from './otlp-decoder';
import { insertSpans, selectTraceSpans } from './traces.queries';

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
  constructor(private readonly deps: { db: Kysely<GatewayDatabase>; pool: Pool }) {}

  /** Stores an export's spans; returns how many were new. */
  store(spans: StoredSpan[]): Promise<number> {
    return insertSpans(this.deps.pool, spans);
  }

  /** The trace's spans as trees under their roots (spans whose parent was not received are roots too). */
  async trace(
    traceId: string,
  ): Promise<{ traceId: string; spanCount: number; services: string[]; roots: SpanNode[] }> {
    const spans = await selectTraceSpans(this.deps.db, traceId);
    if (spans.length === 0) throw new NotFoundError(`No spans of trace ${traceId} were received.`);
    const nodes = new Map<string, SpanNode>(
      spans.map((span) => [
        span.spanId,
        {
          spanId: span.spanId,
          parentSpanId: span.parentSpanId,
          service: span.service,
          name: span.name,
          kind: span.kind,
          start: span.start.toISOString(),
          end: span.end.toISOString(),
          durationMs: Math.round(span.durationMs * 1000) / 1000,
          status: { code: span.statusCode, message: span.statusMessage },
          attributes: span.attributes,
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
      spanCount: spans.length,
      services: [...new Set(spans.map((span) => span.service))].sort(),
      roots,
    };
  }
}
