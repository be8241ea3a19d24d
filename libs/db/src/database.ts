import type { ColumnType } from 'kysely';

/** Row types of every table, for Kysely. The schema itself lives in migrations/*.sql. */
export interface Database {
  telemetry: TelemetryTable;
  gpus: GpusTable;
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
