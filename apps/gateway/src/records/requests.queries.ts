import { copyIn, copyText } from '@gpu-telemetry/db';
import { type Kysely, sql } from 'kysely';
import type { Pool } from 'pg';
import type { GatewayDatabase } from '../gateway.tables';

/** One proxied request, as recorded. */
export interface RequestRecord {
  at: string;
  route: string;
  method: string;
  path: string;
  status: number;
  latencyMs: number;
  bytesIn: number;
  bytesOut: number;
  keyId: string | null;
  requestId: string;
  traceId: string | null;
  upstream: string | null;
}

/** A stored request record, with its id (the listing's cursor). */
export interface StoredRequest extends Omit<RequestRecord, 'at'> {
  id: string;
  at: Date;
}

const COPY_COLUMNS =
  'at, route, method, path, status, latency_ms, bytes_in, bytes_out, key_id, request_id, trace_id, upstream';

/** One record as a line of COPY text format, in COPY_COLUMNS order. */
function copyLine(r: RequestRecord): string {
  return (
    `${r.at}\t${copyText(r.route)}\t${copyText(r.method)}\t${copyText(r.path)}\t${r.status}\t${r.latencyMs}\t` +
    `${r.bytesIn}\t${r.bytesOut}\t${copyText(r.keyId)}\t${copyText(r.requestId)}\t${copyText(r.traceId)}\t` +
    `${copyText(r.upstream)}\n`
  );
}

/**
 * Writes the records in one `COPY ... FROM STDIN`: less Postgres work per row than the
 * `INSERT ... SELECT FROM json_to_recordset` it replaced (docs/performance.md). All or none.
 */
export async function copyRequests(pool: Pool, records: RequestRecord[]): Promise<void> {
  let rows = '';
  for (const record of records) rows += copyLine(record);
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await copyIn(client, `gateway_requests (${COPY_COLUMNS})`, [rows]);
  } catch (error) {
    broken = error as Error;
    throw error;
  } finally {
    // A connection whose COPY failed midway is not trusted with the next one.
    client.release(broken);
  }
}

/** Count, share of 5xx answers and latency percentiles (p50, p90, p99) per route in [from, to). */
export async function routeLatency(
  db: Kysely<GatewayDatabase>,
  args: { route?: string; from: Date; to: Date },
): Promise<{ route: string; count: number; errorRate: number; percentiles: number[] }[]> {
  // percentile_cont has no Kysely builder; one aggregate pass computes all three.
  const { rows } = await sql<{ route: string; count: string; error_rate: number; p: number[] }>`
    SELECT route, count(*) AS count, avg((status >= 500)::int)::float8 AS error_rate,
           percentile_cont(ARRAY[0.5, 0.9, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS p
    FROM gateway_requests
    WHERE at >= ${args.from} AND at < ${args.to} AND (${args.route ?? null}::text IS NULL OR route = ${args.route ?? null}::text)
    GROUP BY route
    ORDER BY route
  `.execute(db);
  return rows.map((row) => ({
    route: row.route,
    count: Number(row.count),
    errorRate: row.error_rate,
    percentiles: row.p,
  }));
}

/** Up to `limit` records, newest first, filtered by route and status, with ids below `before`. */
export async function listRequests(
  db: Kysely<GatewayDatabase>,
  args: { route?: string; status?: number; before?: string; limit: number },
): Promise<StoredRequest[]> {
  let query = db.selectFrom('gateway_requests').selectAll().orderBy('id', 'desc').limit(args.limit);
  if (args.route) query = query.where('route', '=', args.route);
  if (args.status) query = query.where('status', '=', args.status);
  if (args.before) query = query.where('id', '<', args.before);
  const rows = await query.execute();
  return rows.map((row) => ({
    id: row.id,
    at: row.at,
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
  }));
}

/**
 * Deletes at most `limit` records from before `before`; returns how many. Rows are picked by ctid
 * so each call is one short statement, however many rows have expired.
 */
export async function deleteRequestsBefore(
  db: Kysely<GatewayDatabase>,
  before: Date,
  limit: number,
): Promise<number> {
  const result = await sql`
    DELETE FROM gateway_requests
    WHERE ctid IN (SELECT ctid FROM gateway_requests WHERE at < ${before} LIMIT ${limit})
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

/** Sets the statement timeout of the transaction `trx` is in (at least 1 ms). */
export async function setStatementTimeout(trx: Kysely<GatewayDatabase>, timeoutMs: number): Promise<void> {
  await sql`SELECT set_config('statement_timeout', ${String(Math.max(1, Math.ceil(timeoutMs)))}, true)`.execute(
    trx,
  );
}
