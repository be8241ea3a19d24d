import type { SampleGroup } from '@gpu-telemetry/model';

/**
 * The most characters of series keys the cache (and BatchReader's memo of frames' series) holds:
 * a key is its series' metric and labels as JSON, ~350 characters for a dcgm-exporter series, so
 * 256 Mi of them hold ~750,000 series. Counting keys alone would let series with labels near their
 * 64 KiB limit hold gigabytes.
 */
export const SERIES_CACHE_KEY_CHARS = 256 * 1024 * 1024;

/**
 * Series ids this process has already resolved, so a sample finds its series without a round
 * trip. A series id never changes while the series exists, but a series unseen for longer than
 * every retention is deleted; resolving refreshes last_seen, so the cache starts over every
 * `maxAgeMs` (6 hours), well inside the days the maintainer waits before deleting. Past
 * `maxEntries`, or `maxKeyChars` of keys, it starts over too, rather than grow without bound.
 */
export class SeriesCache {
  private readonly ids = new Map<string, number>();
  private startedAt: number;
  private keyChars = 0;

  constructor(
    readonly maxEntries = 2_000_000,
    private readonly maxAgeMs = 6 * 3_600_000,
    private readonly now: () => number = Date.now,
    readonly maxKeyChars = SERIES_CACHE_KEY_CHARS,
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
    if (!this.ids.has(key)) {
      if (this.ids.size >= this.maxEntries || this.keyChars + key.length > this.maxKeyChars) this.startOver();
      this.keyChars += key.length;
    }
    this.ids.set(key, id);
  }

  private startOver(): void {
    this.ids.clear();
    this.keyChars = 0;
    this.startedAt = this.now();
    this.generation++;
  }

  get size(): number {
    return this.ids.size;
  }
}
