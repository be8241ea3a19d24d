import type { ColumnType, Generated } from 'kysely';

/** Row types of every table, for Kysely. The schema itself lives in migrations/*.sql. */
export interface Database {
  queue_topics: QueueTopicsTable;
  queue_messages: QueueMessagesTable;
  queue_topic_counters: QueueTopicCountersTable;
}

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface QueueTopicsTable {
  topic: string;
  max_attempts: number | null;
  created_at: Generated<Timestamp>;
}

export interface QueueMessagesTable {
  id: Generated<string>;
  topic: string;
  msg_uuid: string;
  payload: unknown;
  visible_at: Generated<Timestamp>;
  lease_id: string | null;
  leased_by: string | null;
  attempts: Generated<number>;
  published_at: Generated<Timestamp>;
  dead_at: Timestamp | null;
  last_error: string | null;
}

export interface QueueTopicCountersTable {
  topic: string;
  slot: number;
  live: ColumnType<string, number, number>;
  dead: ColumnType<string, number, number>;
}
