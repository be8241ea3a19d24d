import { NotFoundError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';
import type { GatewayDatabase } from '../gateway.tables';
import { boundedRead, READ_TIMEOUT_MS } from '../records/analytics.service';
import type { SpanLink, StoredSpan } from './otlp-decoder';
import { insertSpans, selectLinkingSpans, selectTraceSpans } from './traces.queries';

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
  /** Spans it follows from, in this trace or others (a batch's: the publishes of its messages). */
  links: SpanLink[];
  children: SpanNode[];
}

/** A span of another trace that links to this one. */
export interface LinkedFrom {
  traceId: string;
  spanId: string;
  service: string;
  name: string;
  start: string;
}

/** Spans received over OTLP, and traces read back as trees. */
export class TracesService {
  constructor(private readonly deps: { db: Kysely<GatewayDatabase>; pool: Pool }) {}

  /** Stores an export's spans; returns how many were new. */
  store(spans: StoredSpan[]): Promise<number> {
    return insertSpans(this.deps.pool, spans);
  }

  /**
   * The trace's spans as trees under their roots: spans whose parent was not received are roots
   * too, and so is a span where its parent chain loops back on itself or runs deeper than
   * MAX_TRACE_DEPTH (what a sender claims is not trusted to be a tree). At most MAX_TRACE_SPANS
   * spans, the earliest, are read; `truncated` says when there were more. `linkedFrom` lists the
   * earliest MAX_LINKED_FROM spans of other traces that link to this one.
   */
  async trace(
    traceId: string,
    view: TraceView = { addresses: true },
  ): Promise<{
    traceId: string;
    spanCount: number;
    truncated: boolean;
    services: string[];
    roots: SpanNode[];
    linkedFrom: LinkedFrom[];
  }> {
    const [spans, linking] = await boundedRead(this.deps.db, READ_TIMEOUT_MS, async (trx) => [
      await selectTraceSpans(trx, traceId, MAX_TRACE_SPANS + 1),
      await selectLinkingSpans(trx, traceId, MAX_LINKED_FROM),
    ]);
    if (spans.length === 0) throw new NotFoundError(`No spans of trace ${traceId} were received.`);
    const truncated = spans.length > MAX_TRACE_SPANS;
    if (truncated) spans.length = MAX_TRACE_SPANS;
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
          attributes: view.addresses ? span.attributes : withoutAddresses(span.attributes),
          links: view.addresses ? span.links : span.links.map(linkWithoutAddresses),
          children: [],
        },
      ]),
    );
    return {
      traceId,
      spanCount: spans.length,
      truncated,
      services: [...new Set(spans.map((s) => s.service))].sort(),
      roots: forest(nodes),
      linkedFrom: linking.map((l) => ({ ...l, start: l.start.toISOString() })),
    };
  }
}

/** How a trace is shown: `addresses` false replaces what names a host, port or URL (ADDRESS_ATTRIBUTES). */
export interface TraceView {
  addresses: boolean;
}

/**
 * Span attributes that name where a service, its peer or its database is reached, as
 * OpenTelemetry's instrumentations set them (current and older semantic conventions): in a trace
 * shown to a key without the admin scope their values read REDACTED, so that a read key learns
 * nothing of the deployment's internal hosts, ports or connection strings.
 */
export const ADDRESS_ATTRIBUTES: ReadonlySet<string> = new Set([
  'server.address',
  'server.port',
  'client.address',
  'client.port',
  'network.peer.address',
  'network.peer.port',
  'network.local.address',
  'network.local.port',
  'url.full',
  'http.url',
  'http.host',
  'http.client_ip',
  'net.peer.name',
  'net.peer.ip',
  'net.peer.port',
  'net.host.name',
  'net.host.ip',
  'net.host.port',
  'net.sock.peer.addr',
  'net.sock.peer.port',
  'net.sock.host.addr',
  'net.sock.host.port',
  'db.connection_string',
  'db.user',
  'host.name',
  'host.ip',
]);

/** What an address attribute reads as in a trace shown without addresses. */
export const REDACTED = 'REDACTED';

function withoutAddresses(attributes: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(attributes)) {
    if (!ADDRESS_ATTRIBUTES.has(key)) continue;
    out ??= { ...attributes };
    out[key] = REDACTED;
  }
  return out ?? attributes;
}

function linkWithoutAddresses(link: SpanLink): SpanLink {
  return link.attributes ? { ...link, attributes: withoutAddresses(link.attributes) } : link;
}

/** The most spans of one trace read back. */
export const MAX_TRACE_SPANS = 10_000;
/** The most spans of other traces listed as linking to one. */
export const MAX_LINKED_FROM = 100;
/** The deepest a tree is built; a span below it starts a tree of its own. */
export const MAX_TRACE_DEPTH = 64;

/**
 * Hangs each span under its parent, level by level from the roots, so that every span is placed
 * once: a cycle (a span its own ancestor) or a chain past MAX_TRACE_DEPTH cannot loop or nest
 * without end. Spans not reached from a root start trees of their own, in start order.
 */
function forest(nodes: Map<string, SpanNode>): SpanNode[] {
  const childrenOf = new Map<string, SpanNode[]>();
  for (const node of nodes.values()) {
    if (!node.parentSpanId || !nodes.has(node.parentSpanId)) continue;
    const siblings = childrenOf.get(node.parentSpanId);
    if (siblings) siblings.push(node);
    else childrenOf.set(node.parentSpanId, [node]);
  }
  const roots: SpanNode[] = [];
  const placed = new Set<SpanNode>();
  const grow = (root: SpanNode) => {
    roots.push(root);
    placed.add(root);
    let level = [root];
    for (let depth = 1; level.length > 0 && depth < MAX_TRACE_DEPTH; depth++) {
      const next: SpanNode[] = [];
      for (const parent of level) {
        for (const child of childrenOf.get(parent.spanId) ?? []) {
          if (placed.has(child)) continue;
          placed.add(child);
          parent.children.push(child);
          next.push(child);
        }
      }
      level = next;
    }
  };
  for (const node of nodes.values()) if (!node.parentSpanId || !nodes.has(node.parentSpanId)) grow(node);
  for (const node of nodes.values()) if (!placed.has(node)) grow(node);
  return roots;
}
