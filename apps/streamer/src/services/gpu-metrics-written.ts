import type { GpuSighting } from './telemetry-write.queries';

/**
 * The metric names this process has stored for each GPU, so that a batch sends a GPU's names only
 * when some of them are new: otherwise the gpus row keeps its list without reading it, and the
 * update that moves last_seen stays narrow. GPUs that report the same names (every GPU of a model,
 * as a rule) share one list. Past `maxEntries` GPUs or lists it starts over rather than grow
 * without bound; forgetting only costs a batch that sends the names again.
 */
export class GpuMetricsWritten {
  private readonly byGpu = new Map<string, ReadonlySet<string>>();
  /** Each distinct list once, by its names joined. */
  private readonly lists = new Map<string, ReadonlySet<string>>();

  constructor(readonly maxEntries = 100_000) {}

  /** The sightings to send: a GPU's names left out (an empty list) where all of them are stored. */
  narrow(sightings: readonly GpuSighting[]): GpuSighting[] {
    return sightings.map((s) => (this.hasAll(s) ? { ...s, metrics: [] } : s));
  }

  /** Notes that these sightings (with all their names) are stored. */
  stored(sightings: readonly GpuSighting[]): void {
    for (const s of sightings) {
      if (this.hasAll(s)) continue;
      const known = this.byGpu.get(s.gpuId);
      const names = known ? [...new Set([...known, ...s.metrics])].sort() : s.metrics;
      if (this.byGpu.size >= this.maxEntries || this.lists.size >= this.maxEntries) this.startOver();
      this.byGpu.set(s.gpuId, this.intern(names));
    }
  }

  /** Forgets GPUs whose rows turned out to be gone (deleted by retention meanwhile). */
  forget(gpuIds: Iterable<string>): void {
    for (const id of gpuIds) this.byGpu.delete(id);
  }

  get size(): number {
    return this.byGpu.size;
  }

  private hasAll(s: GpuSighting): boolean {
    const known = this.byGpu.get(s.gpuId);
    if (!known) return false;
    for (const name of s.metrics) if (!known.has(name)) return false;
    return true;
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
