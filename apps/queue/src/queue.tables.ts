import type { ColumnType, Generated } from 'kysely';

/**
 * Row types of the queue's tables (the schema itself lives in migrations/*.sql). The queue's
 * statements are written out in services/queue.queries.ts; these type its Kysely handle.
 */
export interface QueueDatabase {
  queue_topics: QueueTopicsTable;
  queue_messages: QueueMessagesTable;
  queue_leases: QueueLeasesTable;
  queue_topic_counters: QueueTopicCountersTable;
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
  /** The W3C trace context of the publish that stored it. */
  traceparent: string | null;
}

/** Depth per topic, in 16 slots so concurrent writers rarely touch the same row. */
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
