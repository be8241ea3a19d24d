import { duration, int, loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';

export const streamerEnv = z
  .object({
    ...serviceEnv(8082),
    /**
     * Its lease loops hold one connection each while a batch runs, PromQL up to
     * PROMQL_MAX_CONCURRENCY, and maintenance and the REST reads the rest.
     */
    DATABASE_POOL_SIZE: int(12, 1, 200),
    /** Base URL of the queue service. */
    QUEUE_URL: z.string().url('must be a URL such as http://localhost:8081').default('http://localhost:8081'),
    /**
     * Parallel lease loops, each storing one batch at a time. Four, so that while some wait on a
     * round trip (a lease, a commit, an ack) others keep the database busy: two left a fifth of
     * the machine idle (docs/performance.md).
     */
    STREAMER_CONCURRENCY: int(4, 1, 64),
    /** Queue messages per lease; each carries up to 1000 samples. */
    STREAMER_BATCH: int(20, 1, 1000),
    /** Lease visibility; long batches extend it on a heartbeat. */
    STREAMER_VISIBILITY: duration('60s', { min: '1s', max: '12h' }),
    /** How long a batch may run with its lease kept alive; a batch past it is left to run out. */
    STREAMER_MAX_HANDLE: duration('10m', { min: '10s', max: '24h' }),
    /** Long-poll wait per lease request. */
    STREAMER_WAIT: duration('10s', { max: '60s' }),
    /** Keep raw samples this long (whole chunks are dropped); 0 keeps everything. */
    TELEMETRY_RETENTION: duration('7d'),
    /** Keep 1-minute rollups this long (whole days are dropped); 0 keeps them for ever. */
    TELEMETRY_RETENTION_1M: duration('30d'),
    /** Keep 1-hour rollups this long (whole days are dropped); 0 keeps them for ever. */
    TELEMETRY_RETENTION_1H: duration('365d'),
    /** How often chunks are created ahead and expired ones dropped. */
    TELEMETRY_MAINTENANCE_INTERVAL: duration('1h', { min: '1s', max: '1d' }),
    /** Time is cut into chunks this long; a closed chunk is compacted as a whole. */
    TELEMETRY_CHUNK: duration('1h', { min: '1m', max: '1d' }).refine(
      (ms) => ms % 60_000 === 0 && 86_400_000 % ms === 0,
      'must be whole minutes that divide a day evenly, such as 1m, 2m, 5m, 15m, 1h, 6h or 1d',
    ),
    /**
     * Hot samples can be kept in slices of a chunk: each slice is compacted into blocks once it has
     * been closed for TELEMETRY_COMPACT_AFTER, and a closed chunk's slices are then merged into one
     * block per series. Unset: one slice, the whole chunk.
     */
    TELEMETRY_SLICE: duration('0', { max: '1d' }).refine(
      (ms) => ms % 60_000 === 0,
      'must be whole minutes that divide TELEMETRY_CHUNK, such as 1m, 5m or 10m',
    ),
    /** A chunk is compacted (one block per series) once it has been closed this long. */
    TELEMETRY_COMPACT_AFTER: duration('10m', { min: '10s', max: '7d' }),
    /**
     * Longest one REST aggregate (/v1/gpus/.../series) may take from its start: past it Postgres
     * cancels its read and the call is answered 503. Shorter than the gateway's GATEWAY_TIMEOUT
     * (30s), so the client gets that answer rather than the gateway's 504.
     */
    QUERY_TIMEOUT: duration('20s', { min: '100ms', max: '1h' }),
    /** Longest a PromQL query may run (its own `timeout` parameter can only shorten it); Prometheus: 2m. */
    PROMQL_TIMEOUT: duration('2m', { min: '100ms', max: '1h' }),
    /**
     * Most samples one PromQL query may hold in memory at once. Prometheus' default is 50,000,000;
     * a held sample costs this service about 25 bytes (Go: 16), so 20,000,000 keeps a query under
     * about 500 MB.
     */
    PROMQL_MAX_SAMPLES: int(20_000_000, 1_000, 1_000_000_000),
    /** Most series one selector (or the match[] of a series, labels or values call) may touch. */
    PROMQL_MAX_SERIES: int(50_000, 1, 10_000_000),
    /** PromQL queries evaluated at once (each holds a database connection); the rest wait their turn. */
    PROMQL_MAX_CONCURRENCY: int(4, 1, 256),
    /** How far back an instant selector looks for a sample; Prometheus: 5m. */
    PROMQL_LOOKBACK_DELTA: duration('5m', { min: '1s', max: '1d' }),
  })
  .superRefine((env, ctx) => {
    // deploy/tools/schemas.cjs gives the charts this rule (divides), so helm refuses it too.
    const slice = env.TELEMETRY_SLICE;
    if (slice > 0 && env.TELEMETRY_CHUNK % slice !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['TELEMETRY_SLICE'],
        message: `must divide TELEMETRY_CHUNK (${env.TELEMETRY_CHUNK / 60_000}m)`,
      });
  });

export type StreamerConfig = z.output<typeof streamerEnv>;

export function loadStreamerConfig(env: Record<string, string | undefined> = process.env): StreamerConfig {
  return loadConfig(streamerEnv, env);
}

/** How long a slice of hot samples is (TELEMETRY_SLICE; 0: the whole chunk). */
export function sliceLength(chunkMs: number, sliceMs = 0): number {
  return sliceMs > 0 ? sliceMs : chunkMs;
}
