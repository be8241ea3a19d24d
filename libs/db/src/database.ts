import type { ColumnType, Generated } from 'kysely';

/** Row types of every table, for Kysely. The schema itself lives in migrations/*.sql. */
export interface Database {
  queue_topics: QueueTopicsTable;
  queue_messages: QueueMessagesTable;
  queue_leases: QueueLeasesTable;
  queue_topic_counters: QueueTopicCountersTable;
  telemetry: TelemetryTable;
  gpus: GpusTable;
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
