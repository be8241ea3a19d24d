/**
 * What this process's span exporter has done so far. Kept here, outside the SDK, because the SDK
 * starts (from instrumentation.ts) before the service has a metrics registry; createMetrics()
 * reads these when /metrics is scraped.
 */
export const spanExportStats = {
  /** Spans the collector accepted. */
  exported: 0,
  /** Spans in exports that failed (collector down, refused, timed out) and were given up on. */
  failed: 0,
  /** Spans not kept because the export queue was full (the collector slower than the spans made). */
  dropped: 0,
};
