import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type CollectorMetrics = ReturnType<typeof createCollectorMetrics>;

export function createCollectorMetrics(registry: Registry) {
  const registers = [registry];
  return {
    scrapes: new Counter({
      name: 'collector_scrapes_total',
      help: 'Scrapes by outcome: success, timeout, http_error, connection_error, parse_error, blocked, or the limit refused: too_large (body), sample_limit, label_limit, line_too_long.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    scrapeDuration: new Histogram({
      name: 'collector_scrape_duration_seconds',
      help: 'Time to scrape and parse one target.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    parseErrors: new Counter({
      name: 'collector_parse_errors_total',
      help: 'Exposition lines that could not be parsed (skipped).',
      registers,
    }),
    samplesScraped: new Counter({
      name: 'collector_samples_scraped_total',
      help: 'GPU samples read from targets and CSV replay.',
      registers,
    }),
    metadataSent: new Counter({
      name: 'collector_metadata_sent_total',
      help: 'Metric metadata entries (type, help, unit of a family) sent on the telemetry topic, from scrapes and remote writes.',
      registers,
    }),
    published: new Counter({
      name: 'collector_samples_published_total',
      help: 'Samples the queue accepted.',
      registers,
    }),
    buffered: new Gauge({
      name: 'collector_samples_buffered',
      help: 'Samples waiting to be published.',
      registers,
    }),
    bufferedBytes: new Gauge({
      name: 'collector_buffered_bytes',
      help: 'Bytes of messages (their JSON) waiting to be published, bounded by COLLECT_BUFFER_BYTES.',
      registers,
    }),
    dropped: new Counter({
      name: 'collector_samples_dropped_total',
      help: 'Samples dropped: buffer_full (queue down longer than the buffer lasts), rejected by the queue (scraped or remote-written), unpublished at shutdown, or unstorable (a scraped or replayed GPU sample the store cannot take: gpu index past 65535, too many or too long labels, a time of its own more than a day ahead or older than TELEMETRY_RETENTION).',
      labelNames: ['reason'] as const,
      registers,
    }),
    metadataDropped: new Counter({
      name: 'collector_metadata_dropped_total',
      help: "Metric metadata entries dropped unpublished, by reason (as collector_samples_dropped_total); a scrape target's are sent again with its next scrape.",
      labelNames: ['reason'] as const,
      registers,
    }),
    publishErrors: new Counter({
      name: 'collector_publish_errors_total',
      help: 'Failed publish requests (retried unless rejected).',
      registers,
    }),
    publishDuration: new Histogram({
      name: 'collector_publish_duration_seconds',
      help: 'Time to publish one batch of messages.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    targets: new Gauge({ name: 'collector_targets', help: 'Targets this replica scrapes.', registers }),
    lastSuccess: new Gauge({
      name: 'collector_target_last_success_timestamp_seconds',
      help: 'When each target owned by this replica was last scraped successfully.',
      labelNames: ['target'] as const,
      registers,
    }),
    roundDuration: new Histogram({
      name: 'collector_round_duration_seconds',
      help: 'Time to scrape every owned target once.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    remoteWriteRequests: new Counter({
      name: 'collector_remote_write_requests_total',
      help: 'Remote write requests by outcome: stored (the queue has them), malformed, too_large, unsupported (not remote write 1.0), overloaded, slow_body (not whole within REMOTE_WRITE_BODY_TIMEOUT: 408), queue_unavailable, queue_refused, partial, error.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    remoteWriteSamples: new Counter({
      name: 'collector_remote_write_samples_total',
      help: 'Samples received by remote write and published, by kind: value, or stale (a stale marker).',
      labelNames: ['kind'] as const,
      registers,
    }),
    remoteWriteIgnored: new Counter({
      name: 'collector_remote_write_ignored_total',
      help: 'Parts of remote write requests read past and not stored: exemplar, histogram (native), metadata (a family name that is not a metric name), refused (samples of a series that cannot be stored, or out of time range).',
      labelNames: ['kind'] as const,
      registers,
    }),
    dnsLookups: new Counter({
      name: 'collector_dns_lookups_total',
      help: 'Lookups of COLLECT_DNS names by outcome: success, not_found (no such name or no address: its targets are dropped), or error (a timeout or server failure: the addresses last found are kept).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    remoteWriteDuration: new Histogram({
      name: 'collector_remote_write_duration_seconds',
      help: 'Time to read, decode and publish one remote write request, by outcome.',
      labelNames: ['outcome'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
}
