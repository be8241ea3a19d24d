import type { TelemetrySample } from '@gpu-telemetry/model';

/**
 * Series ids this process has already resolved, so a sample finds its series without a round
 * trip. Entries never go stale (a series id never changes); past `maxEntries` the cache starts
 * over rather than grow without bound.
 */
export class SeriesCache {
  private readonly ids = new Map<string, number>();

  constructor(private readonly maxEntries = 2_000_000) {}

  /** The cache key of a sample's series: its metric and labels as sent (label order may vary). */
  static keyOf(s: TelemetrySample): string {
    return JSON.stringify([
      s.metricName,
      s.gpuId,
      s.gpuIndex,
      s.device,
      s.modelName,
      s.hostname,
      s.container,
      s.pod,
      s.namespace,
      s.labels,
    ]);
  }

  /**
   * The cache key of a series sent as a label set. Its own prefix keeps it apart from a scraped
   * sample's key (a JSON array), as telemetry_series_key keeps the two kinds apart in SQL.
   */
  static keyOfLabelSet(metric: string, labels: Record<string, string>): string {
    return `L${JSON.stringify([metric, labels])}`;
  }

  get(key: string): number | undefined {
    return this.ids.get(key);
  }

  set(key: string, id: number): void {
    if (this.ids.size >= this.maxEntries) this.ids.clear();
    this.ids.set(key, id);
  }

  get size(): number {
    return this.ids.size;
  }
}
