import { bytes, duration, flag, int, list, loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';

export const collectorEnv = z
  .object({
    ...serviceEnv(8083),
    /** Base URL of the queue service. */
    QUEUE_URL: z.string().url('must be a URL such as http://localhost:8081').default('http://localhost:8081'),
    /** Comma-separated scrape URLs; `{1..64}` ranges expand (http://gpu-{01..64}:9400/metrics). */
    COLLECT_TARGETS: list(),
    /** Comma-separated URLs whose host name is resolved each round: every address is a target. */
    COLLECT_DNS: list(),
    COLLECT_INTERVAL: duration('30s', { min: '100ms', max: '1d' }),
    /**
     * Per-scrape timeout, at most COLLECT_INTERVAL (as Prometheus's scrape_timeout): a dead target
     * then holds its slot no longer than one interval. Unset: 10s, or the interval when shorter.
     */
    COLLECT_TIMEOUT: duration('0', { min: '100ms', max: '5m', orZero: true }),
    COLLECT_CONCURRENCY: int(32, 1, 1024),
    COLLECT_MAX_BODY: bytes('32mb'),
    /** Most samples per scrape and labels per sample (Prometheus: sample_limit, label_limit); past either the scrape fails. */
    COLLECT_SAMPLE_LIMIT: int(20_000, 1, 10_000_000),
    COLLECT_LABEL_LIMIT: int(128, 1, 10_000),
    /** Allow targets on link-local and cloud metadata addresses (off: they are refused). */
    COLLECT_ALLOW_LINK_LOCAL: flag(false),
    /** Samples held while the queue is slow or down; beyond it the oldest are dropped (and counted). */
    COLLECT_BUFFER_SAMPLES: int(500_000, 1, 100_000_000),
    /**
     * Bytes of messages held while the queue is slow or down, metadata included; beyond it the
     * oldest are dropped (and counted), however few samples they carry. Never taken as less than
     * 1mb, so that a message of the largest size (~200 KiB) always fits.
     */
    COLLECT_BUFFER_BYTES: bytes('128mb').transform((n) => Math.max(n, 1024 * 1024)),
    /** Queue messages per publish request. */
    COLLECT_PUBLISH_BATCH: int(16, 1, 1000),
    /** Replay a dcgm_metrics_*.csv file as live telemetry. */
    COLLECT_CSV: z.string().optional(),
    COLLECT_CSV_RATE: int(100, 1, 1_000_000),
    COLLECT_CSV_LOOP: flag(true),
    /**
     * Prometheus remote write in (POST /v1/write): the largest body (snappy-compressed), the largest
     * request once decompressed (refused from snappy's preamble, before decoding), the most series
     * and samples in one request, and how many requests are decoded at once (more: 503, retried).
     */
    REMOTE_WRITE_MAX_BODY: bytes('4mb'),
    REMOTE_WRITE_MAX_DECOMPRESSED: bytes('16mb'),
    REMOTE_WRITE_MAX_SERIES: int(50_000, 1, 10_000_000),
    REMOTE_WRITE_MAX_SAMPLES: int(100_000, 1, 10_000_000),
    REMOTE_WRITE_CONCURRENCY: int(4, 1, 1024),
    /** How long a body has to arrive whole (408 past it); bodies are read apart from the writes being decoded. */
    REMOTE_WRITE_BODY_TIMEOUT: duration('10s', { min: '100ms', max: '5m' }),
    /**
     * The streamer's raw retention: a remote-written sample older than it is refused with the
     * write's 400 (the streamer would store none of it), not accepted and then dead-lettered.
     * Set it as the streamer's; 0 takes any age.
     */
    TELEMETRY_RETENTION: duration('7d'),
    /** How many collector replicas split the targets, and which one this is (default: from HOSTNAME, e.g. collector-2). */
    COLLECTOR_REPLICAS: int(1, 1, 1000),
    COLLECTOR_ORDINAL: z.coerce.number().int().min(0).optional(),
    HOSTNAME: z.string().optional(),
  })
  .superRefine((env, ctx) => {
    if (env.COLLECT_TIMEOUT > env.COLLECT_INTERVAL)
      // deploy/tools/schemas.cjs gives the charts this rule (atMost), so helm refuses it too.
      ctx.addIssue({
        code: 'custom',
        path: ['COLLECT_TIMEOUT'],
        message: 'must not be longer than COLLECT_INTERVAL (a dead target would stretch every round)',
      });
  });

export type CollectorConfig = z.output<typeof collectorEnv>;

/** The per-scrape timeout in force: COLLECT_TIMEOUT, or when unset 10s capped at the interval. */
export function scrapeTimeoutMs(
  config: Pick<CollectorConfig, 'COLLECT_TIMEOUT' | 'COLLECT_INTERVAL'>,
): number {
  return config.COLLECT_TIMEOUT > 0 ? config.COLLECT_TIMEOUT : Math.min(10_000, config.COLLECT_INTERVAL);
}

export function loadCollectorConfig(env: Record<string, string | undefined> = process.env): CollectorConfig {
  return loadConfig(collectorEnv, env);
}
