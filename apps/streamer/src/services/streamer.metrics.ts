import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type StreamerMetrics = ReturnType<typeof createStreamerMetrics>;

export function createStreamerMetrics(registry: Registry) {
  const registers = [registry];
  return {
    inserted: new Counter({
      name: 'streamer_rows_inserted_total',
      help: 'Telemetry rows stored.',
      registers,
    }),
    duplicates: new Counter({
      name: 'streamer_rows_duplicate_total',
      help: 'Samples skipped because they were already stored (redelivery).',
      registers,
    }),
    staleMarkers: new Counter({
      name: 'streamer_stale_markers_total',
      help: 'Stale markers stored (a series ended: Prometheus remote write sends them).',
      registers,
    }),
    invalid: new Counter({
      name: 'streamer_samples_invalid_total',
      help: 'Samples that failed validation.',
      registers,
    }),
    deadLettered: new Counter({
      name: 'streamer_messages_dead_lettered_total',
      help: 'Messages sent to the dead letters as invalid.',
      registers,
    }),
    overruns: new Counter({
      name: 'streamer_batches_overrun_total',
      help: 'Batches still being handled after STREAMER_MAX_HANDLE: the statement each waited on was cancelled and its messages dead-lettered (or, should it finish anyway, its lease was left to run out and they are dead-lettered when offered again).',
      registers,
    }),
    batches: new Counter({
      name: 'streamer_batches_total',
      help: 'Batches by outcome (stored, failed).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    insertPaths: new Counter({
      name: 'streamer_insert_paths_total',
      help: 'Batches stored by plain COPY (all rows new) or by the de-duplicating insert (some rows already stored).',
      labelNames: ['path'] as const,
      registers,
    }),
    batchDuration: new Histogram({
      name: 'streamer_batch_duration_seconds',
      help: 'Time to validate and store one leased batch.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    lag: new Gauge({
      name: 'streamer_consumer_lag_seconds',
      help: 'Age of the oldest message of the last batch when it was stored (publish to stored).',
      registers,
    }),
    sampleAge: new Histogram({
      name: 'streamer_sample_age_seconds',
      help: 'Time from a sample being taken (scrape) to being stored, per message.',
      buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
    seriesResolved: new Counter({
      name: 'streamer_series_resolved_total',
      help: 'Series looked up or stored because this process had not seen them yet.',
      registers,
    }),
    seriesCreated: new Counter({
      name: 'streamer_series_created_total',
      help: 'Series stored for the first time by this process.',
      registers,
    }),
    labelIndexFlushes: new Counter({
      name: 'streamer_label_index_flushes_total',
      help: 'Bulk moves of new series into the label index: flushed, not_owner (this role may not; left to inserts and autovacuum) or failed.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    chunksCompacted: new Counter({
      name: 'streamer_chunks_compacted_total',
      help: 'Chunks rewritten as one block per series.',
      registers,
    }),
    compactionFailures: new Counter({
      name: 'streamer_compaction_failures_total',
      help: 'Chunks whose compaction failed (rolled back, tried again next round); the others go on.',
      registers,
    }),
    maintenanceFailures: new Counter({
      name: 'streamer_maintenance_failures_total',
      help: 'Maintenance rounds that failed and wait for the next (maintenance: chunks ahead and retention; compaction: compaction, merges and day folds).',
      labelNames: ['task'] as const,
      registers,
    }),
    samplesCompacted: new Counter({
      name: 'streamer_samples_compacted_total',
      help: 'Samples moved from hot rows into blocks.',
      registers,
    }),
    compactionDuration: new Histogram({
      name: 'streamer_compaction_duration_seconds',
      help: 'Time to compact one chunk.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    slicesMerged: new Counter({
      name: 'streamer_slices_merged_total',
      help: "Compacted slices of a closed chunk merged into the chunk's one block per series.",
      registers,
    }),
    mergeDuration: new Histogram({
      name: 'streamer_slice_merge_duration_seconds',
      help: "Time to merge one closed chunk's slices.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    }),
    lateMerged: new Counter({
      name: 'streamer_late_samples_merged_total',
      help: 'Samples that arrived after their chunk was compacted, merged into its blocks.',
      registers,
    }),
    metadataUpdated: new Counter({
      name: 'streamer_metadata_updated_total',
      help: 'Metrics whose type, help or unit was stored or changed.',
      registers,
    }),
    seriesDeleted: new Counter({
      name: 'streamer_series_deleted_total',
      help: 'Series deleted because nothing of them was left: not seen for four days beyond the longest retention.',
      registers,
    }),
    chunksDropped: new Counter({
      name: 'streamer_chunks_dropped_total',
      help: 'Chunks of telemetry dropped by retention.',
      registers,
    }),
    storageBytes: new Gauge({
      name: 'streamer_storage_bytes',
      help: 'Bytes telemetry takes in Postgres, indexes included, by tier: hot, blocks, rollups_1m, rollups_1h, series (as last measured).',
      labelNames: ['tier'] as const,
      registers,
    }),
    storageSamples: new Gauge({
      name: 'streamer_storage_samples',
      help: 'Samples stored, by tier: hot rows, blocks (as last measured).',
      labelNames: ['tier'] as const,
      registers,
    }),
    storageSeries: new Gauge({
      name: 'streamer_storage_series',
      help: 'Series stored (as last measured).',
      registers,
    }),
    promqlCalls: new Counter({
      name: 'streamer_promql_requests_total',
      help: 'Prometheus API calls by endpoint and outcome (success, or the error type answered).',
      labelNames: ['endpoint', 'outcome'] as const,
      registers,
    }),
    promqlRetries: new Counter({
      name: 'streamer_promql_retries_total',
      help: 'PromQL calls evaluated again: a compaction or day fold emptied a table they read after their snapshot.',
      labelNames: ['endpoint'] as const,
      registers,
    }),
    promqlDownsampled: new Counter({
      name: 'streamer_promql_downsampled_total',
      help: 'PromQL queries that read rollups past TELEMETRY_RETENTION (answers downsampled, with a warning).',
      labelNames: ['endpoint'] as const,
      registers,
    }),
    promqlDuration: new Histogram({
      name: 'streamer_promql_duration_seconds',
      help: 'Time to answer a Prometheus API call (query, query_range, series, labels, label_values), waiting for a turn included.',
      labelNames: ['endpoint'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    promqlSeries: new Counter({
      name: 'streamer_promql_series_selected_total',
      help: 'Series selected by PromQL selectors and match[] parameters.',
      registers,
    }),
    promqlSamples: new Counter({
      name: 'streamer_promql_samples_read_total',
      help: 'Samples read for PromQL, by origin: hot rows, decoded blocks, or rollup buckets.',
      labelNames: ['origin'] as const,
      registers,
    }),
  };
}
