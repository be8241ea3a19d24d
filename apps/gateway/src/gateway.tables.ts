import type { SpanLink } from './traces/otlp-decoder';
import type { ColumnType, Generated } from 'kysely';

/** The gateway's tables, for Kysely. The schema itself lives in migrations/*.sql. */
export interface GatewayDatabase {
  gateway_api_keys: GatewayApiKeysTable;
  gateway_requests: GatewayRequestsTable;
  gateway_spans: GatewaySpansTable;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** A bigint column: pg reads it as a string (it may not fit a number). */
type Int8 = ColumnType<string, number | string, number | string>;

export interface GatewayApiKeysTable {
  id: Generated<string>;
  name: string;
  prefix: string;
  key_hash: Buffer;
  scopes: string[];
  /** Queue topics (names, or prefixes ending in `*`) the key is limited to; null: not limited. */
  topics: ColumnType<string[] | null, string[] | null | undefined, string[] | null>;
  created_at: DefaultTimestamp;
  revoked_at: Timestamp | null;
  last_used_at: Timestamp | null;
}

export interface GatewayRequestsTable {
  id: Generated<string>;
  at: Timestamp;
  route: string;
  method: string;
  path: string;
  status: number;
  latency_ms: number;
  bytes_in: Int8;
  bytes_out: Int8;
  key_id: string | null;
  request_id: string;
  trace_id: string | null;
  upstream: string | null;
}

export interface GatewaySpansTable {
  trace_id: string;
  span_id: string;
  parent_span_id: string | null;
  service: string;
  name: string;
  kind: number;
  start_time: Timestamp;
  end_time: Timestamp;
  duration_ms: number;
  status_code: Generated<number>;
  status_message: string | null;
  attributes: ColumnType<Record<string, unknown>, string | undefined, string>;
  links: ColumnType<SpanLink[], string | undefined, string>;
}
