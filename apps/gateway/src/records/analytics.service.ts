import { isPgError } from '@gpu-telemetry/db';
import { AppError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { GatewayDatabase } from '../gateway.tables';
import { listRequests, routeLatency, setStatementTimeout } from './requests.queries';

/**
 * Longest one analytics or trace read may take before Postgres cancels it: a wide range over
 * millions of request records, asked many times at once, would otherwise hold the gateway's
 * connections (which every uncached key lookup needs) for as long as it runs.
 */
export const READ_TIMEOUT_MS = 10_000;

/**
 * Runs `read` in a read-only transaction that Postgres cancels past `timeoutMs`; a cancelled read
 * is a 503 saying so.
 */
export async function boundedRead<T>(
  db: Kysely<GatewayDatabase>,
  timeoutMs: number,
  read: (trx: Kysely<GatewayDatabase>) => Promise<T>,
): Promise<T> {
  try {
    return await db
      .transaction()
      .setAccessMode('read only')
      .execute(async (trx) => {
        await setStatementTimeout(trx, timeoutMs);
        return read(trx);
      });
  } catch (error) {
    if (!isPgError(error, '57014')) throw error; // query_canceled: the statement timeout
    throw new AppError(
      503,
      `The read took longer than ${timeoutMs / 1000} s and was cancelled; ask for a shorter range or a narrower filter.`,
    );
  }
}

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
  constructor(
    private readonly db: Kysely<GatewayDatabase>,
    private readonly timeoutMs = READ_TIMEOUT_MS,
  ) {}

  async latency(args: { route?: string; from: Date; to: Date }): Promise<RouteLatency[]> {
    const rows = await boundedRead(this.db, this.timeoutMs, (trx) => routeLatency(trx, args));
    return rows.map((row) => ({
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
    const rows = await boundedRead(this.db, this.timeoutMs, (trx) =>
      listRequests(trx, { ...args, limit: args.limit + 1 }),
    );
    const page = rows.slice(0, args.limit);
    return {
      requests: page.map((row) => ({ ...row, at: row.at.toISOString() })),
      nextCursor: rows.length > args.limit ? (page.at(-1)?.id ?? null) : null,
    };
  }
}
