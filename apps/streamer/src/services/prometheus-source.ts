import {
  compareLabels,
  compareStrings,
  type CompiledMatcher,
  compileMatcher,
  type Labels,
  labelsFromRecord,
  labelsKey,
  type Matcher,
  ExecutionError,
  QueryCanceledError,
  QueryTimeoutError,
  type SelectHints,
  type SeriesSamples,
  type SeriesSource,
  setMatches,
} from '@gpu-telemetry/promql';
import { cancelStatement, isPgError } from '@gpu-telemetry/db';
import type { Pool, PoolClient } from 'pg';
import { BlockDecoder, ColumnDecoder, decodeBlock } from '../codec/block-codec';
import {
  allLabelNames,
  allLabelValues,
  beginSnapshot,
  type ChunkSpan,
  chunksIn,
  type Snapshot,
  oldestRollupDayUs,
  readRollupRows,
  type RollupTable,
  endSnapshot,
  labelNamesSince,
  labelValuesSince,
  metricNames,
  metricNamesSince,
  readSamples,
  seriesBatch,
  seriesWithDataBetween,
  type StoredSeries,
} from './prometheus.queries';
import { planRollups, preferFor, type RollupPlan, rollupRow } from './prometheus-rollups';
import { HOUR_US, MINUTE_US } from '../codec/rollup';
import {
  addRollupRow,
  type Bucket,
  downsampled,
  type DownsampledRead,
  evaluationTimes,
} from './prometheus-downsampled';
import { mergePieces, newestAtEach, type Piece } from './sample-pieces';

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
  /**
   * Aborted when nobody waits for the answer any more: the statement running then is cancelled in
   * Postgres (a CancelRequest, which needs no pooled connection), not left to run to its timeout.
   */
  signal?: AbortSignal;
  counters?: SourceCounters;
  /** Encoded blocks one batch of series may hold at once (bounds a selector's memory). */
  blocksPerBatch?: number;
  /** Whether selectors may be answered from rollups where the answer is provably the same. */
  rollups?: boolean;
  /** PROMQL_LOOKBACK_DELTA: how far back an instant selector reads (downsampled reads need it). */
  lookbackMs: number;
  now?: () => number;
}

/**
 * How many times PROMQL_MAX_SERIES all of a query's selectors may hold together: each selector's
 * series and their labels are kept until the query ends (a selector met twice is read once), so a
 * query of hundreds of distinct selectors, each within the limit, could otherwise hold gigabytes.
 */
export const QUERY_SERIES_FACTOR = 4;

/**
 * A regular-expression matcher that tests each distinct value once (a selector's series share
 * their hosts, models and drivers: a fleet's 400,000 series hold a few thousand values of each),
 * remembering at most 100,000 answers.
 */
function rememberingAnswers(m: CompiledMatcher): CompiledMatcher {
  if (m.type !== '=~' && m.type !== '!~') return m;
  const answers = new Map<string, boolean>();
  return {
    ...m,
    matches(value) {
      let answer = answers.get(value);
      if (answer === undefined) {
        answer = m.matches(value);
        if (answers.size < 100_000) answers.set(value, answer);
      }
      return answer;
    },
  };
}

/** A selected series: its Prometheus labels and the stored series behind them (one, nearly always). */
interface Selected {
  labels: Labels;
  ids: number[];
}

const SERIES_BATCH = 5_000;
/** Rollup buckets one batch of series may read at once, past raw retention (bounds memory). */
const MAX_BUCKETS_PER_BATCH = 250_000;
const HOUR_MS = HOUR_US / 1000;
const DAY_MS = 86_400_000;
const DEFAULT_BLOCKS_PER_BATCH = 20_000;
const MAX_SERIES_PER_BATCH = 1_000;
/** Samples the block decoder's arrays may keep room for between series (16 bytes each). */
const DECODER_KEPT = 65_536;
/** What Postgres' timestamptz and JavaScript's Date both hold, in ms: 0001-01-01 to 9999-12-31. */
const MIN_MS = -62_135_596_800_000;
const MAX_MS = 253_402_300_799_999;
const clampMs = (ms: number) => Math.min(MAX_MS, Math.max(MIN_MS, Math.floor(ms)));

/**
 * The values that stored labels may hold: Postgres' text and jsonb refuse NUL, so a value with
 * one names no stored series (and must not reach a statement, which it would fail).
 */
function storable(values: string[] | null): string[] | null {
  return values && values.filter((v) => !v.includes('\0'));
}

/** Most label sets one selector asks the label index for; a longer alternation is matched here. */
const MAX_CONTAINING = 1_000;

/**
 * What a selector's label matchers (not __name__) let the label index find: label sets of which
 * every matching series contains one. The matchers that name their values (setMatches) do: every
 * `=` together, times the values of the shortest alternation. Null where none names values (the
 * metric's series are read and matched here); empty where no series can match (`a="x", a="y"`,
 * or only values with a NUL).
 * Every matcher is still checked on every series found.
 */
export function labelContainment(matchers: readonly CompiledMatcher[]): Record<string, string>[] | null {
  // A map, not an object: `constructor` and `__proto__` are label names too.
  const equal = new Map<string, string>();
  let alternation: { name: string; values: string[] } | undefined;
  for (const m of matchers) {
    if (m.name === '__name__') continue;
    const values = storable(setMatches(m));
    if (!values) continue;
    if (values.length === 0) return [];
    if (values.length === 1) {
      const value = values[0] as string;
      if (equal.has(m.name) && equal.get(m.name) !== value) return [];
      equal.set(m.name, value);
    } else if (values.length <= MAX_CONTAINING && values.length < (alternation?.values.length ?? Infinity)) {
      alternation = { name: m.name, values };
    }
  }
  if (alternation && equal.has(alternation.name)) {
    if (!alternation.values.includes(equal.get(alternation.name) as string)) return [];
    alternation = undefined;
  }
  if (!alternation) return equal.size > 0 ? [Object.fromEntries(equal)] : null;
  const { name, values } = alternation;
  return values.map((value) => Object.fromEntries([...equal, [name, value]]));
}

/** The Prometheus labels of a stored series: its label set and its metric as __name__. */
export function prometheusLabels(s: StoredSeries): Labels {
  return labelsFromRecord({ ...s.labels, __name__: s.metricName });
}

/** One key for equal selectors' matchers. */
const matchersKey = (matchers: readonly Matcher[]): string =>
  JSON.stringify(matchers.map((m) => [m.type, m.name, m.value]));

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
  /** Series the query's selectors hold (resolved is kept for the whole query): see QUERY_SERIES_FACTOR. */
  private seriesHeld = 0;
  private decoder = new BlockDecoder();
  private readonly rollupDecoder = new ColumnDecoder();
  private readonly now: () => number;
  /** The cancel request sent for an abandoned query's statement, if one was. */
  private cancelling: Promise<void> | undefined;
  /** What the snapshot read as it opened; undefined until it is taken. */
  private snapshot: Snapshot | undefined;
  private minuteDays: Promise<number | null> | undefined;
  /**
   * Set when a selector read rollups past raw retention (downsampled, approximate): where raw
   * samples begin (ms; +Infinity when none is left), for the answer's warning.
   */
  downsampledBefore: number | undefined;
  /** telemetry_epoch as the snapshot saw it; undefined until the snapshot is taken. */
  snapshotEpoch: number | undefined;
  /** telemetry_epoch read right after the snapshot ended; undefined until it ends well. */
  closingEpoch: number | undefined;

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
    if (this.cancelling) {
      // A cancel request in flight could still land on the connection's next statement, another
      // query's: the connection is closed instead of going back to the pool.
      await this.cancelling;
      client.release(true);
      return;
    }
    try {
      this.closingEpoch = await endSnapshot(client);
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
        this.snapshot = await beginSnapshot(client, this.remainingMs());
        this.snapshotEpoch = this.snapshot.epoch;
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

  /**
   * Runs a statement, turning Postgres' statement timeout into the query's timeout, and cancelling
   * it in Postgres if the query is abandoned meanwhile.
   */
  private async run<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const { signal } = this.options;
    if (signal?.aborted) throw new QueryCanceledError('expression evaluation');
    this.remainingMs();
    const client = await this.db();
    const cancel = () => {
      // Best effort: a cancel that cannot be sent leaves the statement to the query's deadline.
      this.cancelling ??= cancelStatement(client).then(() => undefined);
    };
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      return await fn(client);
    } catch (error) {
      if (signal?.aborted) throw new QueryCanceledError('expression evaluation');
      if (isPgError(error, '57014')) throw new QueryTimeoutError('expression evaluation');
      throw error;
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  }

  /** The series matching every matcher, in label order; memoised for the query. */
  private resolve(matchers: readonly Matcher[]): Promise<Selected[]> {
    const key = matchersKey(matchers);
    let found = this.resolved.get(key);
    if (!found) {
      found = this.find(matchers);
      this.resolved.set(key, found);
    }
    return found;
  }

  private async find(matchers: readonly Matcher[]): Promise<Selected[]> {
    const compiled = matchers.map(compileMatcher).map(rememberingAnswers);
    const nameMatchers = compiled.filter((m) => m.name === '__name__');
    const equal = nameMatchers.find((m) => m.type === '=');
    let names: string[] | null = null;
    if (equal) names = storable([equal.value]);
    else if (nameMatchers.length > 0) {
      names = (await this.run(metricNames)).filter((n) => nameMatchers.every((m) => m.matches(n)));
    }
    if (names?.length === 0) return [];
    const rest = compiled.filter((m) => m.name !== '__name__' || m !== equal);
    const containing = labelContainment(rest);
    if (containing?.length === 0) return [];
    const byKey = new Map<string, Selected>();
    let afterId = 0;
    for (;;) {
      const batch = await this.run((client) =>
        seriesBatch(client, { names, containing, afterId, limit: SERIES_BATCH }),
      );
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
        const inAll = QUERY_SERIES_FACTOR * this.options.maxSeries;
        if (this.seriesHeld + byKey.size >= inAll) {
          throw new ExecutionError(
            `the query's selectors would touch more than ${inAll} series in all (${QUERY_SERIES_FACTOR} x PROMQL_MAX_SERIES); ask fewer selectors at once`,
          );
        }
        byKey.set(key, { labels, ids: [stored.id] });
      }
      if (batch.length < SERIES_BATCH) break;
      afterId = (batch[batch.length - 1] as StoredSeries).id;
    }
    const selected = [...byKey.values()].sort((a, b) => compareLabels(a.labels, b.labels));
    this.seriesHeld += selected.length;
    this.options.counters?.series(selected.length);
    return selected;
  }

  async *select(matchers: readonly Matcher[], hints: SelectHints): AsyncIterable<SeriesSamples> {
    const selected = await this.resolve(matchers);
    if (selected.length === 0) return;
    const startMs = clampMs(hints.startMs);
    const endMs = clampMs(hints.endMs);
    if (endMs < startMs) return;
    const horizonMs = await this.rawHorizonMs();
    if (startMs >= horizonMs) {
      yield* this.selectRaw(selected, hints, startMs, endMs);
      return;
    }
    // Partly or wholly past TELEMETRY_RETENTION: rollups before the horizon, raw samples after,
    // a batch of series at a time, in the order of `selected`; batches hold at most about
    // MAX_BUCKETS_PER_BATCH buckets (a week of minutes is 10,080 a series).
    const minutes = (Math.min(endMs + 1, horizonMs) - startMs) / 60_000;
    const perBatch = Math.max(1, Math.min(MAX_SERIES_PER_BATCH, Math.floor(MAX_BUCKETS_PER_BATCH / minutes)));
    for (let i = 0; i < selected.length; i += perBatch) {
      const batch = selected.slice(i, i + perBatch);
      const early = await this.beforeRaw(batch, hints, startMs, Math.min(endMs + 1, horizonMs));
      if (early.size > 0) this.downsampledBefore = horizonMs;
      if (endMs >= horizonMs) {
        // The rollups' samples are merged with the raw ones, as pieces of the series.
        yield* this.selectRaw(batch, hints, startMs, endMs, early);
        continue;
      }
      for (const s of batch) {
        const samples = mergePieces(early.get(s) ?? [], startMs, endMs);
        if (samples) yield { labels: s.labels, ...samples };
      }
    }
  }

  /** What the snapshot read as it opened, opening it if need be. */
  private async opened(): Promise<Snapshot> {
    await this.run(async () => undefined);
    return this.snapshot as Snapshot;
  }

  /** Where raw samples begin (ms): the oldest stored chunk's start; +Infinity when none is stored. */
  private async rawHorizonMs(): Promise<number> {
    const { rawHorizonUs } = await this.opened();
    return rawHorizonUs === null ? Infinity : Math.floor(rawHorizonUs / 1000);
  }

  /**
   * The selected series' samples in [startMs, toMs), before raw samples begin, read downsampled
   * from the rollups (see prometheus-downsampled.ts): 1-hour buckets where steps are an hour or
   * more and before the 1-minute rollups' oldest day, 1-minute buckets elsewhere.
   */
  private async beforeRaw(
    batch: Selected[],
    hints: SelectHints,
    startMs: number,
    toMs: number,
  ): Promise<Map<Selected, Piece[]>> {
    const pieces = new Map<Selected, Piece[]>();
    if (toMs <= startMs) return pieces;
    const { lookbackMs } = this.options;
    const read: DownsampledRead =
      hints.rangeMs === 0
        ? {
            kind: 'instant',
            timesMs: evaluationTimes(startMs + lookbackMs, clampMs(hints.endMs), hints.stepMs),
            lookbackMs,
          }
        : { kind: 'range', func: hints.func };
    const hourly = hints.stepMs >= HOUR_MS && (hints.rangeMs === 0 || hints.rangeMs >= HOUR_MS);
    this.minuteDays ??= this.run((client) => oldestRollupDayUs(client, 'telemetry_rollups_1m'));
    const minuteFromUs = hourly ? null : await this.minuteDays;
    const minuteFromMs = minuteFromUs === null ? toMs : Math.max(startMs, Math.floor(minuteFromUs / 1000));
    const spans: { table: RollupTable; bucketUs: number; fromMs: number; toMs: number }[] = [
      { table: 'telemetry_rollups_1h', bucketUs: HOUR_US, fromMs: startMs, toMs: minuteFromMs },
      { table: 'telemetry_rollups_1m', bucketUs: MINUTE_US, fromMs: minuteFromMs, toMs },
    ];
    const ids = batch.flatMap((s) => s.ids);
    const owner = new Map<number, Selected>();
    for (const s of batch) for (const id of s.ids) owner.set(id, s);
    for (const span of spans) {
      if (span.toMs <= span.fromMs) continue;
      const buckets = new Map<Selected, Map<number, Bucket>>();
      // A row starts at its chunk (or, folded, at its day) and may hold buckets from there on.
      await this.run((client) =>
        readRollupRows(
          client,
          {
            table: span.table,
            seriesIds: ids,
            fromUs: (span.fromMs - DAY_MS) * 1000,
            toUs: span.toMs * 1000,
          },
          (id, _startUs, data) => {
            const s = owner.get(id) as Selected;
            let mine = buckets.get(s);
            if (!mine) buckets.set(s, (mine = new Map()));
            addRollupRow(mine, this.rollupDecoder, data);
          },
        ),
      );
      for (const [s, mine] of buckets) {
        const samples = downsampled(mine.values(), span.bucketUs, read, span.fromMs, span.toMs);
        if (!samples) continue;
        this.options.counters?.samples('rollups', samples.timestamps.length);
        let list = pieces.get(s);
        if (!list) pieces.set(s, (list = []));
        list.push({ times: samples.timestamps.map((ms) => ms * 1000), values: samples.values });
      }
    }
    return pieces;
  }

  /**
   * The chunks overlapping [fromUs, toUs), in time order: from those the snapshot read as it
   * opened when they reach back that far (a chunk older than all of them ends before the oldest
   * begins), otherwise asked for.
   */
  private async chunksIn(fromUs: number, toUs: number): Promise<ChunkSpan[]> {
    const { chunks, allChunks } = await this.opened();
    const oldest = chunks[0];
    if (!allChunks && (oldest === undefined || fromUs < oldest.startUs))
      return this.run((client) => chunksIn(client, fromUs, toUs));
    return chunks.filter((c) => c.startUs < toUs && c.endUs > fromUs);
  }

  /**
   * Raw samples (hot rows, blocks, exact rollups) of the selected series, merged with `early`
   * pieces of them (read from rollups before raw samples begin).
   */
  private async *selectRaw(
    selected: Selected[],
    hints: SelectHints,
    startMs: number,
    endMs: number,
    early?: Map<Selected, Piece[]>,
  ): AsyncIterable<SeriesSamples> {
    const fromUs = startMs * 1000;
    const toUs = (endMs + 1) * 1000; // every stored microsecond of endMs
    const plan = this.options.rollups === false ? null : planRollups(hints);
    if (plan) {
      yield* this.fromRollups(selected, plan, startMs, endMs, early);
      return;
    }
    const spans = await this.chunksIn(fromUs, toUs);
    if (spans.length === 0) return;
    const compactedChunks = spans.filter((c) => c.compacted).length;
    const hotChunks = spans.length - compactedChunks;
    // An instant selector reads, at each evaluation time, the newest sample at or before it and
    // nothing else: only those samples need to reach the engine.
    const instants = hints.rangeMs === 0 ? { lastMs: endMs, stepMs: hints.stepMs } : undefined;
    const budget = this.options.blocksPerBatch ?? DEFAULT_BLOCKS_PER_BATCH;
    const perBatch = Math.max(
      1,
      Math.min(MAX_SERIES_PER_BATCH, Math.floor(budget / Math.max(1, compactedChunks))),
    );
    for (let i = 0; i < selected.length; i += perBatch) {
      const batch = selected.slice(i, i + perBatch);
      const ids = batch.flatMap((s) => s.ids);
      const blocks = new Map<number, Buffer[]>();
      const hot = new Map<number, Piece>();
      const stale = new Map<number, Float64Array>();
      await this.run((client) =>
        readSamples(
          client,
          { seriesIds: ids, fromUs, toUs },
          {
            blocks: compactedChunks > 0 ? (id, list) => blocks.set(id, list) : undefined,
            hot: hotChunks > 0 ? (id, piece) => hot.set(id, piece) : undefined,
            stale: (id, times) => stale.set(id, times),
          },
        ),
      );
      for (const s of batch) {
        const samples = this.assemble(s.ids, blocks, hot, stale, startMs, endMs, instants, early?.get(s));
        for (const id of s.ids) {
          blocks.delete(id);
          hot.delete(id);
        }
        if (samples) yield { labels: s.labels, ...samples };
      }
    }
  }

  /**
   * A selector answered from 1-hour rollups where that gives the raw samples' answer (see
   * prometheus-rollups.ts): per batch of series, the rollup rows of the whole days around the
   * range, then raw samples only for what rollups cannot stand for.
   */
  private async *fromRollups(
    selected: Selected[],
    plan: RollupPlan,
    startMs: number,
    endMs: number,
    early?: Map<Selected, Piece[]>,
  ): AsyncIterable<SeriesSamples> {
    const spanFromUs = Math.floor(startMs / DAY_MS) * DAY_MS * 1000;
    const spanToUs = (Math.floor(endMs / DAY_MS) + 1) * DAY_MS * 1000;
    const chunks = await this.chunksIn(spanFromUs, spanToUs);
    if (chunks.length === 0) return;
    const fromUs = startMs * 1000;
    const toUs = (endMs + 1) * 1000;
    const inRange = (c: ChunkSpan) => c.startUs < toUs && c.endUs > fromUs;
    // What rollups cannot stand for, whatever they hold: chunks whose rollups may lack edges or
    // be gone (compacted before edges, or kept past the 1-hour rollups' retention).
    const rawForAll = chunks.filter((c) => c.compacted && !c.exactRollups);
    const anyHot = chunks.some((c) => !c.compacted && inRange(c));
    // Per hour: how much of it stored chunks cover, and the compacted chunks it overlaps.
    const hours = new Map<number, { storedUs: number; compacted: number[] }>();
    for (const c of chunks) {
      for (let h = Math.floor(c.startUs / HOUR_US) * HOUR_US; h < c.endUs; h += HOUR_US) {
        let hour = hours.get(h);
        if (!hour) hours.set(h, (hour = { storedUs: 0, compacted: [] }));
        hour.storedUs += Math.min(c.endUs, h + HOUR_US) - Math.max(c.startUs, h);
        if (c.compacted) hour.compacted.push(c.startUs);
      }
    }
    // A bucket of an hour not wholly stored (partly past retention) stands for nothing.
    const within = (bucketUs: number) => hours.get(bucketUs)?.storedUs === HOUR_US;
    /** Adds to `raw` the compacted chunks overlapping [fromUs, toUs). */
    const readRaw = (raw: Set<number>, fromUs: number, toUs: number) => {
      for (let h = Math.floor(fromUs / HOUR_US) * HOUR_US; h < toUs; h += HOUR_US) {
        for (const c of hours.get(h)?.compacted ?? []) raw.add(c);
      }
    };
    const prefer = preferFor(plan);
    for (let i = 0; i < selected.length; i += MAX_SERIES_PER_BATCH) {
      const batch = selected.slice(i, i + MAX_SERIES_PER_BATCH);
      const ids = batch.flatMap((s) => s.ids);
      const rawChunks = new Set(rawForAll.map((c) => c.startUs));
      const rollups = new Map<number, { pieces: Piece[]; buckets: number }>();
      await this.run((client) =>
        readRollupRows(
          client,
          { table: 'telemetry_rollups_1h', seriesIds: ids, fromUs: spanFromUs, toUs: spanToUs },
          (id, startUs, data) => {
            const row = rollupRow(plan, this.rollupDecoder, data, within);
            if (!row) {
              // No edges: a folded day or one chunk, whose chunks are read raw.
              readRaw(rawChunks, startUs, startUs + DAY_MS * 1000);
              return;
            }
            for (const bucketUs of row.unusable) readRaw(rawChunks, bucketUs, bucketUs + HOUR_US);
            let mine = rollups.get(id);
            if (!mine) rollups.set(id, (mine = { pieces: [], buckets: 0 }));
            mine.pieces.push(row.piece);
            mine.buckets += row.buckets;
          },
        ),
      );
      const raw = chunks.filter((c) => rawChunks.has(c.startUs) && inRange(c)).map((c) => c.startUs);
      const blocks = new Map<number, Buffer[]>();
      const hot = new Map<number, Piece>();
      const stale = new Map<number, Float64Array>();
      await this.run((client) =>
        readSamples(
          client,
          { seriesIds: ids, fromUs, toUs, chunkStartsUs: raw },
          {
            blocks: raw.length > 0 ? (id, list) => blocks.set(id, list) : undefined,
            hot: anyHot ? (id, piece) => hot.set(id, piece) : undefined,
            // Range functions never see staleness markers; an instant selector does.
            stale: plan.fn === 'last' ? (id, times) => stale.set(id, times) : undefined,
          },
        ),
      );
      for (const s of batch) {
        const pieces: Piece[] = [...(early?.get(s) ?? [])];
        const staleUs: number[] = [];
        let buckets = 0;
        let fromBlocks = 0;
        let fromHot = 0;
        for (const id of s.ids) {
          const mine = rollups.get(id);
          if (mine) {
            pieces.push(...mine.pieces);
            buckets += mine.buckets;
          }
          for (const data of blocks.get(id) ?? []) {
            const block = decodeBlock(data);
            pieces.push(block);
            fromBlocks += block.times.length;
          }
          const rows = hot.get(id);
          if (rows) {
            pieces.push(rows);
            fromHot += rows.times.length;
          }
          for (const us of stale.get(id) ?? []) staleUs.push(us);
        }
        this.options.counters?.samples('rollups', buckets);
        this.options.counters?.samples('blocks', fromBlocks);
        this.options.counters?.samples('hot', fromHot);
        const samples = mergePieces(pieces, startMs, endMs, { prefer, staleUs });
        if (samples) yield { labels: s.labels, ...samples };
      }
    }
  }

  /** One series' samples in [startMs, endMs] from its blocks and hot rows (and `early` pieces of it). */
  private assemble(
    ids: number[],
    blocks: Map<number, Buffer[]>,
    hot: Map<number, Piece>,
    stale: Map<number, Float64Array>,
    startMs: number,
    endMs: number,
    instants?: { lastMs: number; stepMs: number },
    early: Piece[] = [],
  ): { timestamps: Float64Array; values: Float64Array } | null {
    const pieces: Piece[] = [...early];
    const markers: number[] = [];
    let fromBlocks = 0;
    let fromHot = 0;
    // The series' blocks are decoded one after another into the decoder's reused arrays and read
    // from there by mergePieces, which copies out what the engine gets. A block of which an instant
    // selector keeps a few samples (copied out by newestAtEach) leaves its place to the next.
    let at = 0;
    for (const id of ids) {
      for (const data of blocks.get(id) ?? []) {
        const n = this.decoder.decodeAt(data, at);
        const view = {
          times: this.decoder.times.subarray(at, at + n),
          values: this.decoder.values.subarray(at, at + n),
        };
        const kept = instants ? newestAtEach(view, instants) : view;
        pieces.push(kept);
        if (kept === view) at += n;
        fromBlocks += n;
      }
      const rows = hot.get(id);
      if (rows) {
        pieces.push(instants ? newestAtEach(rows, instants) : rows);
        fromHot += rows.times.length;
      }
    }
    for (const id of ids) for (const us of stale.get(id) ?? []) markers.push(us);
    this.options.counters?.samples('blocks', fromBlocks);
    this.options.counters?.samples('hot', fromHot);
    const merged = mergePieces(pieces, startMs, endMs, { staleUs: markers });
    // Arrays grown for a series of millions of samples are not kept for the ones after it.
    if (this.decoder.times.length > DECODER_KEPT) this.decoder = new BlockDecoder();
    return merged;
  }

  /**
   * Label names of the series matching any of the sets (without sets: of every series, or with a
   * start of those seen since then).
   */
  async labelNames(
    options: { matchers?: Matcher[][]; startMs?: number; endMs?: number } = {},
  ): Promise<string[]> {
    if (!options.matchers?.length) {
      const since = options.startMs;
      return (
        await this.run((client) =>
          since === undefined ? allLabelNames(client) : labelNamesSince(client, since * 1000),
        )
      ).sort(compareStrings);
    }
    const names = new Set<string>();
    for (const labels of await this.series(options.matchers, options.startMs, options.endMs)) {
      for (const l of labels) names.add(l.name);
    }
    return [...names].sort(compareStrings);
  }

  /**
   * Values of one label over the series matching any of the sets (without sets: over every
   * series, or with a start over those seen since then).
   */
  async labelValues(
    name: string,
    options: { matchers?: Matcher[][]; startMs?: number; endMs?: number } = {},
  ): Promise<string[]> {
    if (!options.matchers?.length) {
      // With a start (Grafana sends one), series unseen since then are left out.
      const since = options.startMs === undefined ? undefined : options.startMs * 1000;
      if (name === '__name__')
        return (
          await this.run((client) =>
            since === undefined ? metricNames(client) : metricNamesSince(client, since),
          )
        ).sort(compareStrings); // in Go's order, whatever the database's collation
      return (
        await this.run((client) =>
          since === undefined ? allLabelValues(client, name) : labelValuesSince(client, name, since),
        )
      ).sort(compareStrings);
    }
    const values = new Set<string>();
    for (const labels of await this.series(options.matchers, options.startMs, options.endMs)) {
      for (const l of labels) if (l.name === name) values.add(l.value);
    }
    return [...values].sort(compareStrings);
  }

  /**
   * The label sets of the series matching any of the sets, in label order; with a time range,
   * only those with samples (hot) or a block in it.
   */
  async series(matcherSets: Matcher[][], startMs?: number, endMs?: number): Promise<Labels[]> {
    const byKey = new Map<string, Selected>();
    // Each set is found and merged, then let go: memoised (as a query's selectors are), a few
    // hundred sets matching the same series would each hold their own copy of them.
    const seen = new Set<string>();
    for (const set of matcherSets) {
      const key = matchersKey(set);
      if (seen.has(key)) continue;
      seen.add(key);
      for (const s of await this.find(set)) {
        const labels = labelsKey(s.labels);
        if (!byKey.has(labels)) byKey.set(labels, s);
      }
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
      let withData = new Set<number>();
      if (ids.length > 0) {
        const horizonMs = await this.rawHorizonMs();
        withData = await this.run((client) =>
          seriesWithDataBetween(client, {
            seriesIds: ids,
            from,
            to,
            rawFrom: Number.isFinite(horizonMs) ? new Date(horizonMs) : null,
          }),
        );
      }
      selected = selected.filter((s) => s.ids.some((id) => withData.has(id)));
    }
    return selected.map((s) => s.labels).sort(compareLabels);
  }
}
