import type { ColumnType, Generated } from 'kysely';

/** The collector's tables, for Kysely. The schema itself lives in migrations/*.sql. */
export interface CollectorDatabase {
  collector_targets: CollectorTargetsTable;
  collector_target_status: CollectorTargetStatusTable;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

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
