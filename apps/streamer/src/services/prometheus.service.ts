import {
  type Labels,
  type Matcher,
  PromQLEngine,
  type QueryResult,
  QueryTimeoutError,
} from '@gpu-telemetry/promql';
import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import type { Pool } from 'pg';
import { PrometheusSource } from './prometheus-source';
import { currentEpoch, readMetadata, type StoredMetadata } from './prometheus.queries';
import type { StreamerMetrics } from './streamer.metrics';

export interface PrometheusLimits {
  /** PROMQL_TIMEOUT: the longest a query may take, waiting for its turn included. */
  timeoutMs: number;
  maxSamples: number;
  maxSeries: number;
  maxConcurrency: number;
  lookbackDeltaMs: number;
}

export interface PrometheusDeps {
  pool: Pool;
  logger: Logger;
  metrics: StreamerMetrics;
  limits: PrometheusLimits;
  /** Whether selectors may read rollups where the answer is provably the same (default yes). */
  rollups?: boolean;
  now?: () => number;
}

/** A query's answer, and what Prometheus' envelope says beside it. */
export type AnsweredQuery = QueryResult & { warnings?: string[] };

/** What a query endpoint is asked, beyond the query itself. */
export interface QueryCall {
  /** The `timeout` parameter, ms: shortens PROMQL_TIMEOUT, never lengthens it. */
  timeoutMs?: number;
  /** Aborted when nobody waits for the answer any more (the client left): the query is cancelled. */
  signal?: AbortSignal;
  /** The `lookback_delta` parameter, ms: instead of PROMQL_LOOKBACK_DELTA for this query. */
  lookbackDeltaMs?: number;
}

/** Endpoints, as metric labels. */
export type PrometheusEndpoint = 'query' | 'query_range' | 'series' | 'labels' | 'label_values' | 'metadata';

const tracer = getTracer('streamer');

/** How many times a call is evaluated while compactions keep committing under it. */
const MAX_ATTEMPTS = 3;

/** The version the engine is proved against (libs/promql's compatibility suite), as build info says it. */
export const PROMETHEUS_COMPATIBLE_VERSION = '2.42.0';

/**
 * PromQL over the stored telemetry: each call gets its own source (one snapshot, one connection)
 * and engine, waits for one of PROMQL_MAX_CONCURRENCY turns within its timeout, and is counted,
 * timed and traced.
 */
export class PrometheusService {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly now: () => number;

  constructor(private readonly deps: PrometheusDeps) {
    this.now = deps.now ?? Date.now;
  }

  async instantQuery(query: string, timeMs: number, call: QueryCall = {}): Promise<AnsweredQuery> {
    return this.evaluate('query', { 'db.query.text': query.slice(0, 1024) }, call, (engine, timeoutMs) =>
      engine.instantQuery(query, timeMs, { timeoutMs, signal: call.signal }),
    );
  }

  async rangeQuery(
    query: string,
    range: { startMs: number; endMs: number; stepMs: number },
    call: QueryCall = {},
  ): Promise<AnsweredQuery> {
    return this.evaluate(
      'query_range',
      { 'db.query.text': query.slice(0, 1024) },
      call,
      (engine, timeoutMs) =>
        engine.rangeQuery(query, range.startMs, range.endMs, range.stepMs, {
          timeoutMs,
          signal: call.signal,
        }),
    );
  }

  /** The label sets of the series matching any of the sets (with data in the range, when given). */
  async series(
    matchers: Matcher[][],
    range: { startMs?: number; endMs?: number },
    call: QueryCall = {},
  ): Promise<Labels[]> {
    return this.withSource('series', {}, call, (source) =>
      source.series(matchers, range.startMs, range.endMs),
    );
  }

  async labelNames(
    matchers: Matcher[][],
    range: { startMs?: number; endMs?: number },
    call: QueryCall = {},
  ): Promise<string[]> {
    return this.withSource('labels', {}, call, (source) => source.labelNames({ matchers, ...range }));
  }

  async labelValues(
    name: string,
    matchers: Matcher[][],
    range: { startMs?: number; endMs?: number },
    call: QueryCall = {},
  ): Promise<string[]> {
    return this.withSource('label_values', { 'promql.label': name }, call, (source) =>
      source.labelValues(name, { matchers, ...range }),
    );
  }

  /** Type, help and unit by metric name (one metric, or all), at most `limit` metrics. */
  async metadata(args: { metric?: string; limit?: number }): Promise<Map<string, StoredMetadata>> {
    return this.withSource('metadata', {}, {}, () => readMetadata(this.deps.pool, args));
  }

  private evaluate(
    endpoint: PrometheusEndpoint,
    attributes: Record<string, string>,
    call: QueryCall,
    run: (engine: PromQLEngine, timeoutMs: number) => Promise<QueryResult>,
  ): Promise<AnsweredQuery> {
    const { limits } = this.deps;
    return this.withSource(endpoint, attributes, call, async (source, deadline) => {
      const result: AnsweredQuery = await run(
        new PromQLEngine({
          source,
          lookbackDeltaMs: call.lookbackDeltaMs ?? limits.lookbackDeltaMs,
          maxSamples: limits.maxSamples,
          timeoutMs: limits.timeoutMs,
          now: this.now,
        }),
        Math.max(1, deadline - this.now()),
      );
      if (source.downsampledBefore !== undefined) {
        this.deps.metrics.promqlDownsampled.inc({ endpoint });
        const before = source.downsampledBefore;
        result.warnings = [
          `${Number.isFinite(before) ? `samples before ${new Date(before).toISOString()} are` : 'every sample is'} ` +
            'past TELEMETRY_RETENTION: read from rollups, one sample per minute or hour (downsampled, approximate)',
        ];
      }
      return result;
    });
  }

  /** Runs `fn` in its turn with a fresh source, counted and traced; the source is always closed. */
  private async withSource<T>(
    endpoint: PrometheusEndpoint,
    attributes: Record<string, string>,
    call: QueryCall,
    fn: (source: PrometheusSource, deadline: number) => Promise<T>,
  ): Promise<T> {
    const { metrics, limits, pool } = this.deps;
    const started = this.now();
    const deadline = started + Math.min(limits.timeoutMs, call.timeoutMs ?? Infinity);
    const timer = metrics.promqlDuration.startTimer({ endpoint });
    let outcome = 'success';
    try {
      return await withSpan(tracer, `promql.${endpoint}`, attributes, async (span) => {
        await this.turn(deadline);
        try {
          for (let attempt = 1; ; attempt++) {
            const source = new PrometheusSource({
              pool,
              maxSeries: limits.maxSeries,
              deadline,
              signal: call.signal,
              rollups: this.deps.rollups,
              lookbackMs: call.lookbackDeltaMs ?? limits.lookbackDeltaMs,
              now: this.now,
              counters: {
                series: (n) => metrics.promqlSeries.inc(n),
                samples: (origin, n) => metrics.promqlSamples.inc({ origin }, n),
              },
            });
            let result: T;
            try {
              result = await fn(source, deadline);
            } finally {
              await source.close();
            }
            // A compaction or day fold that committed after the snapshot may have emptied a
            // table before the query read it: the answer is made again from a newer snapshot.
            const seen = source.snapshotEpoch;
            if (seen === undefined || attempt === MAX_ATTEMPTS || this.now() >= deadline) return result;
            if ((source.closingEpoch ?? (await currentEpoch(pool))) === seen) return result;
            metrics.promqlRetries.inc({ endpoint });
            span.setAttribute('promql.attempts', attempt + 1);
          }
        } finally {
          this.release();
        }
      });
    } catch (error) {
      outcome = (error as { errorType?: string }).errorType ?? 'internal';
      if (outcome === 'internal') this.deps.logger.error({ err: error, endpoint }, 'PromQL call failed');
      throw error;
    } finally {
      timer();
      metrics.promqlCalls.inc({ endpoint, outcome });
    }
  }

  /** Waits for one of PROMQL_MAX_CONCURRENCY turns, until the deadline (a timeout, as Prometheus' queue). */
  private async turn(deadline: number): Promise<void> {
    if (this.running < this.deps.limits.maxConcurrency) {
      this.running++;
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          const at = this.waiting.indexOf(wake);
          if (at >= 0) this.waiting.splice(at, 1);
          reject(new QueryTimeoutError('query queue'));
        },
        Math.max(0, deadline - this.now()),
      );
      this.waiting.push(wake);
    });
    // The turn was handed over by release(): running already counts it.
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
