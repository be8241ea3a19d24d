import { compareLabels, compareStrings, type Labels, labelsFromRecord, labelsKey } from './labels';
import { compileMatcher, matchesAll, type Matcher } from './matchers';

/** What the engine will do with the samples it asks for, so a source can choose how to read. */
export interface SelectHints {
  /** Inclusive bounds, in milliseconds, of the samples the engine may look at. */
  startMs: number;
  endMs: number;
  /** The evaluation step of the (sub)query this selector is evaluated in; 0 for an instant query. */
  stepMs: number;
  /** The range of the enclosing range selector (`[5m]`); 0 for an instant vector selector. */
  rangeMs: number;
  /** The innermost function or aggregation applied to the selection (`rate`, `sum`), if any. */
  func?: string;
  /** The grouping of that aggregation (`by` labels, or `without` labels when `by` is false). */
  grouping?: string[];
  by?: boolean;
}

/** One series as a source yields it. */
export interface SeriesSamples {
  labels: Labels;
  /** Sample times in milliseconds, ascending, no duplicates. */
  timestamps: Float64Array;
  /** Sample values; a staleness marker is the NaN with bits 0x7ff0000000000002, kept as stored. */
  values: Float64Array;
}

/**
 * Where the engine reads series from. What the engine relies on:
 *
 * - `select` yields every series whose labels satisfy all matchers (a missing label matches as the
 *   empty string), each once, with at least its samples inside [hints.startMs, hints.endMs]
 *   (samples outside are allowed and ignored), timestamps ascending and unique.
 * - Staleness markers are yielded as stored, bit for bit: they end a series for the lookback.
 * - Series should come in label order (`compareLabels`); the engine sorts when they do not.
 * - Hints are advice. A source may answer from rollups only where the engine's answer stays the
 *   same (for example `max_over_time` over windows that cover whole rollup buckets); otherwise it
 *   must return raw samples.
 * - The engine consumes one series at a time and keeps no reference to a yielded series' arrays
 *   beyond the step results it computes from them, so a source may stream.
 */
export interface SeriesSource {
  select(
    matchers: readonly Matcher[],
    hints: SelectHints,
    signal?: AbortSignal,
  ): AsyncIterable<SeriesSamples>;
  /** Label names of the series matching any of the matcher sets (all series without sets). */
  labelNames(options?: { matchers?: Matcher[][]; startMs?: number; endMs?: number }): Promise<string[]>;
  /** Values of one label over the series matching any of the matcher sets. */
  labelValues(
    name: string,
    options?: { matchers?: Matcher[][]; startMs?: number; endMs?: number },
  ): Promise<string[]>;
}

const STALE_HI = 0x7ff00000;
const STALE_LO = 0x00000002;

/** Whether values[i] is Prometheus's staleness marker (checked on the bits: NaNs lose them when copied). */
export function isStaleMarker(values: Float64Array, i: number): boolean {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  return words[i * 2] === STALE_LO && words[i * 2 + 1] === STALE_HI;
}

/** Writes the staleness marker into values[i]. */
export function writeStaleMarker(values: Float64Array, i: number): void {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  words[i * 2] = STALE_LO;
  words[i * 2 + 1] = STALE_HI;
}

/** A sample as test data and fixtures write it; `stale: true` is a staleness marker. */
export type SampleInput = [timestampMs: number, value: number] | { t: number; stale: true };

interface StoredSeries {
  labels: Labels;
  timestamps: Float64Array;
  values: Float64Array;
}

/** All series in memory: for tests, the compatibility suite, and small embedded uses. */
export class MemorySeriesSource implements SeriesSource {
  private readonly series = new Map<string, StoredSeries>();
  private sorted: StoredSeries[] | undefined;

  /** Adds a series (or replaces the one with the same labels); samples are sorted by time. */
  add(labels: Labels | Record<string, string>, samples: readonly SampleInput[]): this {
    const ls = Array.isArray(labels)
      ? (labels as Labels)
      : labelsFromRecord(labels as Record<string, string>);
    const ordered = [...samples].sort((a, b) => time(a) - time(b));
    const timestamps = new Float64Array(ordered.length);
    const values = new Float64Array(ordered.length);
    ordered.forEach((s, i) => {
      timestamps[i] = time(s);
      if (Array.isArray(s)) values[i] = s[1];
      else writeStaleMarker(values, i);
    });
    this.series.set(labelsKey(ls), { labels: ls, timestamps, values });
    this.sorted = undefined;
    return this;
  }

  private all(): StoredSeries[] {
    this.sorted ??= [...this.series.values()].sort((a, b) => compareLabels(a.labels, b.labels));
    return this.sorted;
  }

  async *select(matchers: readonly Matcher[], hints: SelectHints): AsyncIterable<SeriesSamples> {
    const compiled = matchers.map(compileMatcher);
    for (const s of this.all()) {
      if (!matchesAll(compiled, s.labels)) continue;
      const from = lowerBound(s.timestamps, hints.startMs);
      const to = lowerBound(s.timestamps, hints.endMs + 1);
      if (from >= to) continue;
      yield {
        labels: s.labels,
        timestamps: s.timestamps.subarray(from, to),
        values: s.values.subarray(from, to),
      };
    }
  }

  private matching(options?: { matchers?: Matcher[][]; startMs?: number; endMs?: number }): StoredSeries[] {
    const sets = (options?.matchers ?? []).map((set) => set.map(compileMatcher));
    const start = options?.startMs ?? -Infinity;
    const end = options?.endMs ?? Infinity;
    return this.all().filter((s) => {
      if (sets.length > 0 && !sets.some((set) => matchesAll(set, s.labels))) return false;
      return lowerBound(s.timestamps, start) < lowerBound(s.timestamps, end + 1);
    });
  }

  async labelNames(options?: {
    matchers?: Matcher[][];
    startMs?: number;
    endMs?: number;
  }): Promise<string[]> {
    const names = new Set<string>();
    for (const s of this.matching(options)) for (const l of s.labels) names.add(l.name);
    return [...names].sort(compareStrings);
  }

  async labelValues(
    name: string,
    options?: { matchers?: Matcher[][]; startMs?: number; endMs?: number },
  ): Promise<string[]> {
    const values = new Set<string>();
    for (const s of this.matching(options))
      for (const l of s.labels) if (l.name === name) values.add(l.value);
    return [...values].sort(compareStrings);
  }
}

function time(s: SampleInput): number {
  return Array.isArray(s) ? s[0] : s.t;
}

/** The first index whose timestamp is >= t. */
export function lowerBound(timestamps: Float64Array, t: number): number {
  let lo = 0;
  let hi = timestamps.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (timestamps[mid] < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
