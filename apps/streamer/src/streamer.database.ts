import type { ColumnType, Generated } from 'kysely';

/** Row types of the streamer's tables, for Kysely. The schema itself lives in migrations/*.sql. */
export interface StreamerDatabase {
  telemetry_series: TelemetrySeriesTable;
  telemetry_samples: TelemetrySamplesTable;
  telemetry_chunks: TelemetryChunksTable;
  telemetry_stale: TelemetryStaleTable;
  telemetry_metadata: TelemetryMetadataTable;
  gpus: GpusTable;
}

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A timestamp column with a database default. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
/** bigint columns: pg returns them as strings. */
type BigIntColumn = ColumnType<string, number | string, number | string>;

export interface TelemetrySeriesTable {
  id: Generated<BigIntColumn>;
  key: string;
  metric_name: string;
  /** Null for a series that names no GPU (remote-written series of any metric). */
  gpu_id: string | null;
  gpu_index: number | null;
  device: string | null;
  model_name: string | null;
  hostname: string | null;
  container: string | null;
  pod: string | null;
  namespace: string | null;
  /** The labels that are not GPU columns (all of them for a series without a GPU). */
  labels: ColumnType<Record<string, string>, string, string>;
  /** The whole Prometheus label set, __name__ apart (metric_name). */
  prom_labels: ColumnType<Record<string, string>, string, string>;
  created_at: DefaultTimestamp;
  /** When a streamer last resolved it (at most a day behind); see migrations/0015. */
  last_seen: DefaultTimestamp;
}

/**
 * Hot samples (migrations/0029): exactly one of value_dec (a 4-byte decimal, hot-value.ts) and
 * value (the double) is set; telemetry_value(value, value_dec) reads either.
 */
export interface TelemetrySamplesTable {
  series_id: number;
  value_dec: number | null;
  ts: Timestamp;
  value: number | null;
}

/** Prometheus stale markers: the series ended at ts (PromQL's lookback stops there). */
/** Type, help and unit of a metric family, as exporters last said them (migrations/0016). */
export interface TelemetryMetadataTable {
  metric_name: string;
  type: string;
  help: string;
  unit: string;
  updated_at: DefaultTimestamp;
}

export interface TelemetryStaleTable {
  series_id: BigIntColumn;
  ts: Timestamp;
}

export interface TelemetryChunksTable {
  chunk_start: Timestamp;
  chunk_end: Timestamp;
  created_at: DefaultTimestamp;
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
