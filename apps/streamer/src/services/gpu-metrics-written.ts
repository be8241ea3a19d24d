import type { GpuSighting } from './telemetry-write.queries';

/** What this process stored of a GPU: its metric names, and the latest last_seen it sent. */
interface Written {
  names: ReadonlySet<string>;
  lastSeenMs: number;
}

/**
 * Margin for the maintainer's clock (it may run on another machine) and for the time between
 * sending a batch's sightings and their commit. A row's last_seen is never below what was sent,
 * so a sample stamped ahead only puts its deletion off.
 */
const CLOCK_MARGIN_MS = 10 * 60_000;

/**
 * The metric names this process has stored for each GPU, so that a batch sends a GPU's names only
 * when some of them are new: otherwise the gpus row keeps its list without reading it, and the
 * update that moves last_seen stays narrow. GPUs that report the same names (every GPU of a model,
 * as a rule) share one list.
 *
 * What it remembers is true while the row cannot have been deleted: the maintainer deletes a GPU
 * unseen for `gpuRetentionMs` (0: never; the longest retention, as every streamer's maintainer is
 * configured), so an entry is used only while the last_seen it sent is younger than that, less a
 * margin for clocks. Past it the names are sent again, whichever
 * streamer wrote the row since. Past `maxEntries` GPUs or lists it starts over rather than grow
 * without bound; forgetting only costs a batch that sends the names again.
 */
export class GpuMetricsWritten {
  private readonly byGpu = new Map<string, Written>();
  /** Each distinct list once, by its names joined. */
  private readonly lists = new Map<string, ReadonlySet<string>>();

  /** How long after the last_seen it sent an entry is trusted; 0: always. */
  private readonly trustMs: number;

  constructor(
    gpuRetentionMs = 0,
    readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.trustMs = gpuRetentionMs > 0 ? gpuRetentionMs - Math.min(CLOCK_MARGIN_MS, gpuRetentionMs / 2) : 0;
  }

  /** The sightings to send: a GPU's names left out (an empty list) where all of them are stored. */
  narrow(sightings: readonly GpuSighting[]): GpuSighting[] {
    const now = this.now();
    return sightings.map((s) => {
      const known = this.current(s.gpuId, now);
      return known && covers(known, s) ? { ...s, metrics: [] } : s;
    });
  }

  /** Notes that these sightings (with all their names) are stored. */
  stored(sightings: readonly GpuSighting[]): void {
    const now = this.now();
    for (const s of sightings) {
      const lastSeenMs = Date.parse(s.lastSeen);
      const known = this.current(s.gpuId, now);
      if (known && covers(known, s)) {
        known.lastSeenMs = Math.max(known.lastSeenMs, lastSeenMs);
        continue;
      }
      const names = known ? [...new Set([...known.names, ...s.metrics])].sort() : s.metrics;
      const adding = !this.byGpu.has(s.gpuId);
      if ((adding && this.byGpu.size >= this.maxEntries) || this.lists.size >= this.maxEntries)
        this.startOver();
      this.byGpu.set(s.gpuId, {
        names: this.intern(names),
        lastSeenMs: Math.max(known?.lastSeenMs ?? -Infinity, lastSeenMs),
      });
    }
  }

  /** Forgets GPUs whose rows turned out to be gone. */
  forget(gpuIds: Iterable<string>): void {
    for (const id of gpuIds) this.byGpu.delete(id);
  }

  get size(): number {
    return this.byGpu.size;
  }

  /** The entry of a GPU, unless its row may have been deleted since (then it is dropped). */
  private current(gpuId: string, now: number): Written | undefined {
    const known = this.byGpu.get(gpuId);
    if (!known || this.trustMs === 0) return known;
    if (now - known.lastSeenMs < this.trustMs) return known;
    this.byGpu.delete(gpuId);
    return undefined;
  }

  private intern(sortedNames: readonly string[]): ReadonlySet<string> {
    const key = sortedNames.join('\n');
    let list = this.lists.get(key);
    if (!list) this.lists.set(key, (list = new Set(sortedNames)));
    return list;
  }

  private startOver(): void {
    this.byGpu.clear();
    this.lists.clear();
  }
}

/** Whether every name of the sighting is among those written. */
function covers(known: Written, s: GpuSighting): boolean {
  for (const name of s.metrics) if (!known.names.has(name)) return false;
  return true;
}
