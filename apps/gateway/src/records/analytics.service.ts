import type { Kysely } from 'kysely';
import type { GatewayDatabase } from '../gateway.tables';
import { listRequests, routeLatency } from './requests.queries';

export interface RouteLatency {
  route: string;
  count: number;
  /** Share of 5xx answers. */
  errorRate: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
}

const round = (n: number | undefined) => Math.round((n ?? 0) * 1000) / 1000;

/** Latency analytics and listings over the request records. */
export class AnalyticsService {
  constructor(private readonly db: Kysely<GatewayDatabase>) {}

  async latency(args: { route?: string; from: Date; to: Date }): Promise<RouteLatency[]> {
    return (await routeLatency(this.db, args)).map((row) => ({
      route: row.route,
      count: row.count,
      errorRate: round(row.errorRate),
      p50Ms: round(row.percentiles[0]),
      p90Ms: round(row.percentiles[1]),
      p99Ms: round(row.percentiles[2]),
    }));
  }

  /** A page of records, newest first; `nextCursor` is the `before` of the next page, or null. */
  async requests(args: { route?: string; status?: number; limit: number; before?: string }) {
    // One more than the page: whether it comes back says whether there is a next page.
    const rows = await listRequests(this.db, { ...args, limit: args.limit + 1 });
    const page = rows.slice(0, args.limit);
    return {
      requests: page.map((row) => ({ ...row, at: row.at.toISOString() })),
      nextCursor: rows.length > args.limit ? (page.at(-1)?.id ?? null) : null,
    };
  }
}
