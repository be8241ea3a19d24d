import {
  compareLabels,
  compileMatcher,
  type Labels,
  labelsFromRecord,
  labelsKey,
  type Matcher,
  ExecutionError,
  QueryTimeoutError,
  type SelectHints,
  type SeriesSamples,
  type SeriesSource,
} from '@gpu-telemetry/promql';
import { isPgError } from '@gpu-telemetry/db';
import type { Pool, PoolClient } from 'pg';
import { decodeBlock } from '../codec/block-codec';
import {
  allLabelNames,
  allLabelValues,
  beginSnapshot,
  chunksBetween,
  endSnapshot,
  metricNames,
  readBlocks,
  readHotSamples,
  seriesBatch,
  seriesWithDataBetween,
  type StoredSeries,
  TYPED_LABELS,
} from './prometheus.queries';
import { type RollupPlan, planRollups, readRollupSeries } from './prometheus-rollups';

/** What a source counts as it reads (streamer_promql_* metrics). */
export interface SourceCounters {
  series(n: number): void;
  samples(origin: 'hot' | 'blocks' | 'rollups', n: number): void;
}

export interface PrometheusSourceOptions {
  pool: Pool;
  /** Most series one selector may select (PROMQL_MAX_SERIES). */
  maxSeries: number;
  /** When the query must be done (Date.now() clock): statements are cut off there too. */
  deadline: number;
  counters?: SourceCounters;
  /** Encoded blocks one batch of series may hold at once (bounds a selector's memory). */
  blocksPerBatch?: number;
  /** Whether selectors may be answered from rollups where the answer is provably the same. */
  rollups?: boolean;
  now?: () => number;
}

/** A selected series: its Prometheus labels and the stored series behind them (one, nearly always). */
interface Selected {
  labels: Labels;
  ids: number[];
}

const SERIES_BATCH = 5_000;
const DEFAULT_BLOCKS_PER_BATCH = 20_000;
const MAX_SERIES_PER_BATCH = 1_000;
/** What Postgres' timestamptz and JavaScript's Date both hold, in ms: 0001-01-01 to 9999-12-31. */
const MIN_MS = -62_135_596_800_000;
const MAX_MS = 253_402_300_799_999;
const clampMs = (ms: number) => Math.min(MAX_MS, Math.max(MIN_MS, Math.floor(ms)));

/** The Prometheus labels of a stored series (see TYPED_LABELS for how the columns map back). */
export function prometheusLabels(s: StoredSeries): Labels {
  const record: Record<string, string> = {};
  for (const name in s.labels) {
    const value = s.labels[name];
    if (typeof value === 'string' && value !== '' && name !== '__name__') record[name] = value;
  }
  for (const t of TYPED_LABELS) {
    const value = s[t.field];
    if (value === null || value === '') continue;
    if (t.spellings.some((spelling) => spelling in s.labels)) continue;
    record[t.label] = String(value);
  }
  record['__name__'] = s.metricName;
  return labelsFromRecord(record);
}

/**
 * The stored telemetry as a PromQL series source, for one query: every statement runs in one
 * snapshot on one connection, taken on first use and given back by `close()`. Selectors find
 * their series by metric name (an index scan; every name when the selector names none) and match
 * the labels here, with Prometheus' anchored RE2 semantics, stopping at `maxSeries`; then stream
 * their samples a batch of series at a time, hot rows and blocks alike, decoded here.
 */
export class PrometheusSource implements SeriesSource {
  private client: PoolClient | undefined;
  private opening: Promise<PoolClient> | undefined;
  private readonly resolved = new Map<string, Promise<Selected[]>>();
  private readonly now: () => number;

  constructor(private readonly options: PrometheusSourceOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Ends the snapshot and gives the connection back; safe to call more than once. */
  async close(): Promise<void> {
    const opening = this.opening;
    this.opening = undefined;
    this.client = undefined;
    if (!opening) return;
    let client: PoolClient;
    try {
      client = await opening;
    } catch {
      return; // never opened: nothing to give back
    }
    try {
      await endSnapshot(client);
      client.release();
    } catch (error) {
      client.release(error instanceof Error ? error : true); // in an unknown state: not reused
    }
  }

  private async db(): Promise<PoolClient> {
    if (this.client) return this.client;
    this.opening ??= (async () => {
      const client = await this.options.pool.connect();
      try {
        await beginSnapshot(client, this.remainingMs());
      } catch (error) {
        client.release(error instanceof Error ? error : true);
        throw error;
      }
      return client;
    })();
    this.client = await this.opening;
    return this.client;
  }

  private remainingMs(): number {
    const left = this.options.deadline - this.now();
    if (left <= 0) throw new QueryTimeoutError('expression evaluation');
    return left;
  }

  /** Runs a statement, turning Postgres' statement timeout into the query's timeout. */
  private async run<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    this.remainingMs();
    const client = await this.db();
    try {
      return await fn(client);
    } catch (error) {
      if (isPgError(error, '57014')) throw new QueryTimeoutError('expression evaluation');
      throw error;
    }
  }

  /** The series matching every matcher, in label order; memoised for the query. */
  private resolve(matchers: readonly Matcher[]): Promise<Selected[]> {
    const key = JSON.stringify(matchers.map((m) => [m.type, m.name, m.value]));
    let found = this.resolved.get(key);
    if (!found) {
      found = this.find(matchers);
      this.resolved.set(key, found);
    }
    return found;
  }

  private async find(matchers: readonly Matcher[]): Promise<Selected[]> {
    const compiled = matchers.map(compileMatcher);
    const nameMatchers = compiled.filter((m) => m.name === '__name__');
    const equal = nameMatchers.find((m) => m.type === '=');
    let names: string[] | null = null;
    if (equal) names = [equal.value];
    else if (nameMatchers.length > 0) {
      names = (await this.run(metricNames)).filter((n) => nameMatchers.every((m) => m.matches(n)));
    }
    if (names?.length === 0) return [];
    const rest = compiled.filter((m) => m.name !== '__name__' || m !== equal);
    const byKey = new Map<string, Selected>();
    let afterId = 0;
    for (;;) {
      const batch = await this.run((client) => seriesBatch(client, { names, afterId, limit: SERIES_BATCH }));
      for (const stored of batch) {
        const labels = prometheusLabels(stored);
        let matches = true;
        for (const m of rest) {
          let value = '';
          for (const l of labels) if (l.name === m.name) value = l.value;
          if (!m.matches(value)) {
            matches = false;
            break;
          }
        }
        if (!matches) continue;
        const key = labelsKey(labels);
        const same = byKey.get(key);
        if (same) {
          same.ids.push(stored.id);
          continue;
        }
        if (byKey.size >= this.options.maxSeries) {
          throw new ExecutionError(
            `a selector would touch more than ${this.options.maxSeries} series (PROMQL_MAX_SERIES); narrow it with more label matchers`,
          );
        }
        byKey.set(key, { labels, ids: [stored.id] });
      }
      if (batch.length < SERIES_BATCH) break;
      afterId = (batch[batch.length - 1] as StoredSeries).id;
    }
    const selected = [...byKey.values()].sort((a, b) => compareLabels(a.labels, b.labels));
    this.options.counters?.series(selected.length);
    return selected;
  }

  async *select(matchers: readonly Matcher[], hints: SelectHints): AsyncIterable<SeriesSamples> {
    const selected = await this.resolve(matchers);
    if (selected.length === 0) return;
    const startMs = clampMs(hints.startMs);
    const endMs = clampMs(hints.endMs);
    if (endMs < startMs) return;
    const fromUs = startMs * 1000;
    const toUs = (endMs + 1) * 1000; // every stored microsecond of endMs
    const plan = this.options.rollups === false ? null : planRollups(hints);
    if (plan) {
      yield* this.fromRollups(selected, plan, startMs, endMs);
      return;
    }
    const chunks = await this.run((client) => chunksBetween(client, fromUs, toUs));
    if (chunks.compacted + chunks.hot === 0) return;
    const budget = this.options.blocksPerBatch ?? DEFAULT_BLOCKS_PER_BATCH;
    const perBatch = Math.max(1, Math.min(MAX_SERIES_PER_BATCH, Math.floor(budget / Math.max(1, chunks.compacted))));
    for (let i = 0; i < selected.length; i += perBatch) {
      const batch = selected.slice(i, i + perBatch);
      const ids = batch.flatMap((s) => s.ids);
      const blocks = new Map<number, Buffer[]>();
      const hot = new Map<number, HotRows>();
      if (chunks.compacted > 0) {
        await this.run((client) =>
          readBlocks(client, { seriesIds: ids, fromUs, toUs }, (id, data) => {
            let list = blocks.get(id);
            if (!list) blocks.set(id, (list = []));
            list.push(Buffer.from(data)); // the stream reuses its buffer
          }),
        );
      }
      if (chunks.hot > 0) {
        await this.run((client) =>
          readHotSamples(client, { seriesIds: ids, fromUs, toUs }, (id, us, buf, at) => {
            let rows = hot.get(id);
            if (!rows) hot.set(id, (rows = { us: [], hi: [], lo: [] }));
            rows.us.push(us);
            rows.hi.push(buf.readUInt32BE(at));
            rows.lo.push(buf.readUInt32BE(at + 4));
          }),
        );
      }
      for (const s of batch) {
        const samples = this.assemble(s.ids, blocks, hot, startMs, endMs);
        for (const id of s.ids) {
          blocks.delete(id);
          hot.delete(id);
        }
        if (samples) yield { labels: s.labels, ...samples };
      }
    }
  }

  private async *fromRollups(
    selected: Selected[],
    plan: RollupPlan,
    startMs: number,
    endMs: number,
  ): AsyncIterable<SeriesSamples> {
    for (let i = 0; i < selected.length; i += MAX_SERIES_PER_BATCH) {
      const batch = selected.slice(i, i + MAX_SERIES_PER_BATCH);
      const read = await this.run((client) =>
        readRollupSeries(client, {
          plan,
          series: batch.map((s) => s.ids),
          startMs,
          endMs,
        }),
      );
      for (let k = 0; k < batch.length; k++) {
        const samples = read[k];
        if (!samples || samples.timestamps.length === 0) continue;
        this.options.counters?.samples('rollups', samples.timestamps.length);
        yield { labels: (batch[k] as Selected).labels, ...samples };
      }
    }
  }

  /**
   * One series' samples in [startMs, endMs] from its blocks and hot rows: times in ms, ascending
   * and unique (two samples in one millisecond: the later one), values bit for bit as stored.
   */
  private assemble(
    ids: number[],
    blocks: Map<number, Buffer[]>,
    hot: Map<number, HotRows>,
    startMs: number,
    endMs: number,
  ): { timestamps: Float64Array; values: Float64Array } | null {
    const pieces: { times: Float64Array; values: Float64Array }[] = [];
    let fromBlocks = 0;
    let fromHot = 0;
    for (const id of ids) {
      for (const data of blocks.get(id) ?? []) {
        const block = decodeBlock(data);
        pieces.push(block);
        fromBlocks += block.times.length;
      }
      const rows = hot.get(id);
      if (rows) {
        const n = rows.us.length;
        const values = new Float64Array(n);
        const words = new Uint32Array(values.buffer);
        for (let k = 0; k < n; k++) {
          words[2 * k] = rows.lo[k] as number;
          words[2 * k + 1] = rows.hi[k] as number;
        }
        pieces.push({ times: Float64Array.from(rows.us), values });
        fromHot += n;
      }
    }
    this.options.counters?.samples('blocks', fromBlocks);
    this.options.counters?.samples('hot', fromHot);
    if (pieces.length === 0) return null;
    pieces.sort((a, b) => (a.times[0] as number) - (b.times[0] as number));
    const total = pieces.reduce((n, p) => n + p.times.length, 0);
    const timestamps = new Float64Array(total);
    const values = new Float64Array(total);
    // Values move as their two 32-bit words: a NaN moved as a number may lose its bits.
    const out = new Uint32Array(values.buffer);
    let n = 0;
    let ordered = true;
    for (const p of pieces) {
      const words = new Uint32Array(p.values.buffer, p.values.byteOffset, p.values.length * 2);
      for (let k = 0; k < p.times.length; k++) {
        const ms = Math.floor((p.times[k] as number) / 1000);
        if (n > 0 && ms <= (timestamps[n - 1] as number)) {
          if (ms < (timestamps[n - 1] as number)) ordered = false;
          else n--; // the same millisecond: the later sample stands
        }
        timestamps[n] = ms;
        out[2 * n] = words[2 * k] as number;
        out[2 * n + 1] = words[2 * k + 1] as number;
        n++;
      }
    }
    let t: Float64Array = timestamps.subarray(0, n);
    let v: Float64Array = values.subarray(0, n);
    if (!ordered) ({ t, v } = sortByTime(t, v));
    keepStaleMarkers(v);
    const lo = lowerBound(t, startMs);
    const hi = lowerBound(t, endMs + 1);
    if (hi <= lo) return null;
    return { timestamps: t.subarray(lo, hi), values: v.subarray(lo, hi) };
  }

  /** Label names of the series matching any of the sets (all series without sets). */
  async labelNames(options: { matchers?: Matcher[][]; startMs?: number; endMs?: number } = {}): Promise<string[]> {
    if (!options.matchers?.length) return (await this.run(allLabelNames)).sort();
    const names = new Set<string>();
    for (const labels of await this.series(options.matchers, options.startMs, options.endMs)) {
      for (const l of labels) names.add(l.name);
    }
    return [...names].sort();
  }

  /** Values of one label over the series matching any of the sets (all series without sets). */
  async labelValues(
    name: string,
    options: { matchers?: Matcher[][]; startMs?: number; endMs?: number } = {},
  ): Promise<string[]> {
    if (!options.matchers?.length) {
      if (name === '__name__') return this.run(metricNames);
      return (await this.run((client) => allLabelValues(client, name))).sort();
    }
    const values = new Set<string>();
    for (const labels of await this.series(options.matchers, options.startMs, options.endMs)) {
      for (const l of labels) if (l.name === name) values.add(l.value);
    }
    return [...values].sort();
  }

  /**
   * The label sets of the series matching any of the sets, in label order; with a time range,
   * only those with samples (hot) or a block in it.
   */
  async series(matcherSets: Matcher[][], startMs?: number, endMs?: number): Promise<Labels[]> {
    const byKey = new Map<string, Selected>();
    for (const set of matcherSets) {
      for (const s of await this.resolve(set)) byKey.set(labelsKey(s.labels), s);
      if (byKey.size > this.options.maxSeries) {
        throw new ExecutionError(
          `the match[] selectors would touch more than ${this.options.maxSeries} series (PROMQL_MAX_SERIES); narrow them`,
        );
      }
    }
    let selected = [...byKey.values()];
    if (startMs !== undefined || endMs !== undefined) {
      const ids = selected.flatMap((s) => s.ids);
      const from = new Date(clampMs(startMs ?? MIN_MS));
      const to = new Date(clampMs(endMs ?? MAX_MS));
      const withData = ids.length ? await this.run((client) => seriesWithDataBetween(client, { seriesIds: ids, from, to })) : new Set<number>();
      selected = selected.filter((s) => s.ids.some((id) => withData.has(id)));
    }
    return selected.map((s) => s.labels).sort(compareLabels);
  }
}

interface HotRows {
  us: number[];
  hi: number[];
  lo: number[];
}

/** The first index whose value is >= x. */
function lowerBound(a: Float64Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((a[mid] as number) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Samples whose pieces overlapped in time: sorted, one per millisecond (the later one stands). */
function sortByTime(t: Float64Array, v: Float64Array): { t: Float64Array; v: Float64Array } {
  const order = Array.from({ length: t.length }, (_, i) => i).sort((a, b) => (t[a] as number) - (t[b] as number) || a - b);
  const times = new Float64Array(t.length);
  const values = new Float64Array(t.length);
  const from = new Uint32Array(v.buffer, v.byteOffset, v.length * 2);
  const to = new Uint32Array(values.buffer);
  let n = 0;
  for (const i of order) {
    if (n > 0 && times[n - 1] === t[i]) n--;
    times[n] = t[i] as number;
    to[2 * n] = from[2 * i] as number;
    to[2 * n + 1] = from[2 * i + 1] as number;
    n++;
  }
  return { t: times.subarray(0, n), v: values.subarray(0, n) };
}

/**
 * Prometheus' staleness marker is the NaN 0x7ff0000000000002. A JavaScript array of numbers
 * quiets a NaN it holds (0x7ff8000000000002), which a writer that gathers values that way may
 * store: that NaN is read as the marker it was.
 */
function keepStaleMarkers(values: Float64Array): void {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
  for (let i = 0; i < values.length; i++) {
    if (words[2 * i] === 2 && words[2 * i + 1] === 0x7ff80000) words[2 * i + 1] = 0x7ff00000;
  }
}

