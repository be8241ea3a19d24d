import { pingDatabase } from '@gpu-telemetry/db';
import { TELEMETRY_TOPIC } from '@gpu-telemetry/model';
import { type Consumer, createConsumer, type QueueClient } from '@gpu-telemetry/queue-client';
import {
  createMetrics,
  createServiceApp,
  isDependencyFailure,
  type Logger,
  type ResponseCheck,
  type ServiceMetrics,
  serviceTokenFrom,
} from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import { Kysely, PostgresDialect } from 'kysely';
import type { Pool } from 'pg';
import { type StreamerConfig, sliceLength, streamerEnv } from './config';
import { streamerApi } from './routes/gpus.openapi';
import { gpusRoutes } from './routes/gpus.routes';
import { prometheusRoutes } from './routes/prometheus.routes';
import { storageRoutes } from './routes/storage.routes';
import { ChunkCompactor } from './services/chunk-compactor';
import { IngestService } from './services/ingest.service';
import { PrometheusService } from './services/prometheus.service';
import { createStreamerMetrics, type StreamerMetrics } from './services/streamer.metrics';
import { StorageService } from './services/storage.service';
import { gpuRetention, TelemetryMaintainer } from './services/telemetry-maintainer';
import { TelemetryQueryService } from './services/telemetry-query.service';
import type { StreamerDatabase } from './streamer.database';

export { loadStreamerConfig, streamerEnv } from './config';

export interface StreamerAppDeps {
  /** The streamer's queries run on this pool (Kysely over it for the typed ones). */
  pool: Pool;
  logger: Logger;
  queue: QueueClient;
  config: Pick<
    StreamerConfig,
    | 'STREAMER_CONCURRENCY'
    | 'STREAMER_BATCH'
    | 'STREAMER_VISIBILITY'
    | 'STREAMER_MAX_HANDLE'
    | 'STREAMER_WAIT'
    | 'TELEMETRY_RETENTION'
    | 'TELEMETRY_MAINTENANCE_INTERVAL'
    | 'SERVICE_TOKEN'
    | 'SERVICE_TOKEN_PREVIOUS'
  > &
    Partial<
      Pick<
        StreamerConfig,
        | 'TELEMETRY_CHUNK'
        | 'TELEMETRY_SLICE'
        | 'TELEMETRY_COMPACT_AFTER'
        | 'TELEMETRY_RETENTION_1M'
        | 'TELEMETRY_RETENTION_1H'
        | 'QUERY_TIMEOUT'
        | 'PROMQL_TIMEOUT'
        | 'PROMQL_MAX_SAMPLES'
        | 'PROMQL_MAX_SERIES'
        | 'PROMQL_MAX_CONCURRENCY'
        | 'PROMQL_LOOKBACK_DELTA'
      >
    >;
  /** Name shown on leases, e.g. the pod name. */
  consumerName?: string;
  /** Tests: holds every answer to the OpenAPI document (see createServiceApp). */
  checkResponse?: ResponseCheck;
}

export interface StreamerApp {
  app: Express;
  metrics: ServiceMetrics;
  streamerMetrics: StreamerMetrics;
  ingest: IngestService;
  prometheus: PrometheusService;
  compactor: ChunkCompactor;
  maintainer: TelemetryMaintainer;
  /** Starts telemetry maintenance and the lease loops. */
  start(): Promise<void>;
  /** Stops leasing and finishes the batches in hand. */
  stop(): Promise<void>;
}

export function createApp(deps: StreamerAppDeps): StreamerApp {
  const { pool, logger, queue, config } = deps;
  const db = new Kysely<StreamerDatabase>({ dialect: new PostgresDialect({ pool }) });
  const metrics = createMetrics('streamer');
  const streamerMetrics = createStreamerMetrics(metrics.registry);
  const chunkMs = config.TELEMETRY_CHUNK ?? streamerEnv.shape.TELEMETRY_CHUNK.parse(undefined);
  const sliceMs = sliceLength(chunkMs, config.TELEMETRY_SLICE);
  const compactAfterMs =
    config.TELEMETRY_COMPACT_AFTER ?? streamerEnv.shape.TELEMETRY_COMPACT_AFTER.parse(undefined);
  const compactor = new ChunkCompactor({
    pool,
    logger,
    metrics: streamerMetrics,
    compactAfterMs,
    chunkMs,
    // While consumers are behind, the chunks the backlog still feeds wait for it.
    backlogAgeMs: () =>
      queue.topic(TELEMETRY_TOPIC).then(
        (stats) => (stats.oldestReadyAgeSeconds ?? 0) * 1000,
        () => undefined,
      ),
  });
  const retention1mMs =
    config.TELEMETRY_RETENTION_1M ?? streamerEnv.shape.TELEMETRY_RETENTION_1M.parse(undefined);
  const retention1hMs =
    config.TELEMETRY_RETENTION_1H ?? streamerEnv.shape.TELEMETRY_RETENTION_1H.parse(undefined);
  const ingest = new IngestService({
    pool,
    logger,
    metrics: streamerMetrics,
    retentionMs: config.TELEMETRY_RETENTION,
    gpuRetentionMs: gpuRetention(config.TELEMETRY_RETENTION, retention1mMs, retention1hMs),
    sliceMs,
    compactor,
  });
  const storage = new StorageService({
    pool,
    retentionMs: config.TELEMETRY_RETENTION,
    metrics: streamerMetrics,
  });
  const maintainer = new TelemetryMaintainer({
    pool,
    storage,
    logger,
    metrics: streamerMetrics,
    compactor,
    retentionMs: config.TELEMETRY_RETENTION,
    retention1mMs,
    retention1hMs,
    chunkMs,
    sliceMs,
    intervalMs: config.TELEMETRY_MAINTENANCE_INTERVAL,
    // Look for closed chunks often enough that one waits little past TELEMETRY_COMPACT_AFTER.
    compactEveryMs: Math.min(60_000, Math.max(1_000, compactAfterMs / 2)),
    onDropped: () => ingest.forgetChunks(),
  });
  const setting = <K extends keyof typeof streamerEnv.shape>(name: K) =>
    (config as Partial<StreamerConfig>)[name] ??
    (streamerEnv.shape[name].parse(undefined) as StreamerConfig[K]);
  const queries = new TelemetryQueryService(db, pool, {
    maxSamples: setting('PROMQL_MAX_SAMPLES'),
    timeoutMs: setting('QUERY_TIMEOUT'),
  });
  const prometheus = new PrometheusService({
    pool,
    logger,
    metrics: streamerMetrics,
    limits: {
      timeoutMs: setting('PROMQL_TIMEOUT'),
      maxSamples: setting('PROMQL_MAX_SAMPLES'),
      maxSeries: setting('PROMQL_MAX_SERIES'),
      maxConcurrency: setting('PROMQL_MAX_CONCURRENCY'),
      lookbackDeltaMs: setting('PROMQL_LOOKBACK_DELTA'),
    },
  });
  let consumer: Consumer | undefined;
  let stopped = false;
  const app = createServiceApp({
    service: 'streamer',
    logger,
    metrics,
    readiness: [
      { name: 'postgres', check: () => pingDatabase(pool) },
      // Reported, not required: what a ready streamer serves (GPUs, storage, PromQL) is read from
      // Postgres, and it keeps asking the queue for work on its own while the queue is away.
      { name: 'queue', check: () => queue.ready(), required: false },
    ],
    serviceToken: serviceTokenFrom(config),
    openapi: streamerApi,
    checkResponse: deps.checkResponse,
    binaryBodyRoutes: (app) => app.use(prometheusRoutes(prometheus)),
    routes: (app) => app.use(gpusRoutes(queries), storageRoutes(storage)),
  });
  return {
    app,
    metrics,
    streamerMetrics,
    ingest,
    prometheus,
    compactor,
    maintainer,
    async start() {
      await maintainer.runLogged();
      // Stopped while the first round ran (it may compact chunks for minutes): start nothing.
      if (stopped) return;
      maintainer.start();
      consumer = createConsumer({
        client: queue,
        topic: TELEMETRY_TOPIC,
        consumer: deps.consumerName ?? 'streamer',
        concurrency: config.STREAMER_CONCURRENCY,
        batch: config.STREAMER_BATCH,
        visibilitySeconds: Math.ceil(config.STREAMER_VISIBILITY / 1000),
        maxHandleSeconds: config.STREAMER_MAX_HANDLE / 1000,
        waitSeconds: config.STREAMER_WAIT / 1000,
        logger,
        handle: (messages, signal) => ingest.handle(messages, signal),
        onOverrun: () => streamerMetrics.overruns.inc(),
        // Postgres down or restarting: the batch goes back untouched, no attempt spent on it.
        isTransient: isDependencyFailure,
      });
      consumer.start();
      logger.info(
        { concurrency: config.STREAMER_CONCURRENCY, batch: config.STREAMER_BATCH },
        'consuming telemetry',
      );
    },
    async stop() {
      stopped = true;
      await consumer?.stop();
      await maintainer.stop();
    },
  };
}
