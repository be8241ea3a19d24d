import type { Database } from '@gpu-telemetry/db';
import { type Kysely, sql } from 'kysely';

export interface RouteLatency {
  route: string;
  count: number;
  /** Share of 5xx answers. */
  errorRate: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

/** Latency analytics and listings over the request records. */
export class AnalyticsService {
  constructor(private readonly db: Kysely<Database>) {}

  async latency(args: { route?: string; from: Date; to: Date }): Promise<RouteLatency[]> {
    const { rows } = await sql<{ route: string; count: string; error_rate: number; p: number[] }>`
      SELECT route, count(*) AS count, avg((status >= 500)::int)::float8 AS error_rate,
             percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS p
      FROM gateway_requests
      WHERE at >= ${args.from} AND at < ${args.to} AND (${args.route ?? null}::text IS NULL OR route = ${args.route ?? null}::text)
      GROUP BY route
      ORDER BY route
    `.execute(this.db);
    const round = (n: number | undefined) => Math.round((n ?? 0) * 1000) / 1000;
    return rows.map((row) => ({
      route: row.route,
      count: Number(row.count),
      errorRate: round(row.error_rate),
      p50Ms: round(row.p[0]),
      p90Ms: round(row.p[1]),
      p99Ms: round(row.p[2]),
    }));
  }

  async requests(args: { route?: string; status?: number; limit: number; before?: string }) {
    let query = this.db
      .selectFrom('gateway_requests')
      .selectAll()
      .orderBy('id', 'desc')
      .limit(args.limit + 1);
    if (args.route) query = query.where('route', '=', args.route);
    if (args.status) query = query.where('status', '=', args.status);
    if (args.before) query = query.where('id', '<', args.before);
    const rows = await query.execute();
    const page = rows.slice(0, args.limit);
    return {
      requests: page.map((row) => ({
        id: row.id,
        at: row.at.toISOString(),
        route: row.route,
        method: row.method,
        path: row.path,
        status: row.status,
        latencyMs: row.latency_ms,
        bytesIn: Number(row.bytes_in),
        bytesOut: Number(row.bytes_out),
        keyId: row.key_id,
        requestId: row.request_id,
        traceId: row.trace_id,
        upstream: row.upstream,
      })),
      nextCursor: rows.length > args.limit ? (page.at(-1)?.id ?? null) : null,
    };
  }
}
