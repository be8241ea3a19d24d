import type { ColumnType, Generated } from 'kysely';

/** Row types of every table, for Kysely. The schema itself lives in migrations/*.sql. */
export interface Database {
  queue_topics: QueueTopicsTable;
  queue_messages: QueueMessagesTable;
  queue_leases: QueueLeasesTable;
  queue_topic_counters: QueueTopicCountersTable;
  collector_targets: CollectorTargetsTable;
  collector_target_status: CollectorTargetStatusTable;
  gateway_api_keys: GatewayApiKeysTable;
  gateway_requests: GatewayRequestsTable;
  gateway_spans: GatewaySpansTable;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface QueueTopicsTable {
  topic: string;
  max_attempts: number | null;
  created_at: DefaultTimestamp;
}

export interface QueueMessagesTable {
  topic: string;
  msg_uuid: string;
  seq: Generated<string>;
  payload: unknown;
  visible_at: DefaultTimestamp;
  lease_id: string | null;
  attempts: Generated<number>;
  published_at: DefaultTimestamp;
  dead_at: Timestamp | null;
  last_error: string | null;
}

export interface QueueTopicCountersTable {
  topic: string;
  slot: number;
  live: ColumnType<string, number, number>;
  dead: ColumnType<string, number, number>;
}

export interface QueueLeasesTable {
  lease_id: string;
  topic: string;
  consumer: string;
  msg_uuids: string[];
  lease_until: Timestamp;
  leased_at: DefaultTimestamp;
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
