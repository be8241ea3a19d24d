import type { SampleGroup } from '@gpu-telemetry/model';

/**
 * Series ids this process has already resolved, so a sample finds its series without a round
 * trip. A series id never changes while the series exists, but a series unseen for longer than
 * every retention is deleted; resolving refreshes last_seen, so the cache starts over every
 * `maxAgeMs` (6 hours), well inside the days the maintainer waits before deleting. Past
 * `maxEntries` it starts over too, rather than grow without bound.
 */
export class SeriesCache {
  private readonly ids = new Map<string, number>();
  private startedAt: number;

  constructor(
    readonly maxEntries = 2_000_000,
    private readonly maxAgeMs = 6 * 3_600_000,
    private readonly now: () => number = Date.now,
  ) {
    this.startedAt = now();
  }

  /** The cache key of a sample's series: its metric and labels as sent (label order may vary). */
  static keyOf(s: SampleGroup & { metricName: string }): string {
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

  /** Changes each time the cache starts over: an id resolved under an older one is not kept. */
  generation = 0;

  /** Starts over if the ids are maxAge old: called once per batch, before its lookups. */
  expireIfOld(): void {
    if (this.now() - this.startedAt >= this.maxAgeMs) this.startOver();
  }

  get(key: string): number | undefined {
    return this.ids.get(key);
  }

  /** Keeps an id resolved while `generation` was current (ids resolved before a start-over are not). */
  set(key: string, id: number, generation = this.generation): void {
    if (generation !== this.generation) return;
    if (this.ids.size >= this.maxEntries) this.startOver();
    this.ids.set(key, id);
  }

  private startOver(): void {
    this.ids.clear();
    this.startedAt = this.now();
    this.generation++;
  }

  get size(): number {
    return this.ids.size;
  }
}
