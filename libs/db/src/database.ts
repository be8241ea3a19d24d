import type { ColumnType, Generated } from 'kysely';

/** Row types of every table, for Kysely. The schema itself lives in migrations/*.sql. */
export interface Database {
  telemetry: TelemetryTable;
  gpus: GpusTable;
  collector_targets: CollectorTargetsTable;
  collector_target_status: CollectorTargetStatusTable;
  gateway_api_keys: GatewayApiKeysTable;
  gateway_requests: GatewayRequestsTable;
  gateway_spans: GatewaySpansTable;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface TelemetryTable {
  uuid: string;
  gpu_id: string;
  gpu_index: number | null;
  device: string | null;
  model_name: string | null;
  hostname: string | null;
  metric_name: string;
  timestamp: Timestamp;
  value: number;
  container: string | null;
  pod: string | null;
  namespace: string | null;
  labels: ColumnType<Record<string, string>, string, string>;
  ingested_at: DefaultTimestamp;
}

export interface GpusTable {
  gpu_id: string;
  gpu_index: number | null;
  device: string | null;
  model_name: string | null;
  hostname: string | null;
  first_seen: Timestamp;
  last_seen: Timestamp;
  metrics: string[];
}

export interface CollectorTargetsTable {
  id: Generated<string>;
  url: string;
  created_at: DefaultTimestamp;
}

export interface CollectorTargetStatusTable {
  url: string;
  owner: string;
  last_scrape_at: Timestamp;
  last_success_at: Timestamp | null;
  last_error: string | null;
  last_duration_ms: number;
  last_samples: number;
  consecutive_failures: Generated<number>;
}

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
  bytes_in: number;
  bytes_out: number;
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
  status_code: number;
  status_message: string | null;
  attributes: ColumnType<Record<string, unknown>, string, string>;
}
