import type { Database } from '@gpu-telemetry/db';
import { pingDatabase } from '@gpu-telemetry/db';
import { TELEMETRY_TOPIC } from '@gpu-telemetry/model';
import { type Consumer, createConsumer, type QueueClient } from '@gpu-telemetry/queue-client';
import {
  createMetrics,
  createServiceApp,
  type Logger,
  type ResponseCheck,
  type ServiceMetrics,
  serviceTokenFrom,
} from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';
import type { StreamerConfig } from './config';
import { streamerApi } from './routes/gpus.openapi';
import { gpusRoutes } from './routes/gpus.routes';
import { IngestService } from './services/ingest.service';
import { PartitionMaintainer } from './services/partition-maintainer';
import { createStreamerMetrics, type StreamerMetrics } from './services/streamer.metrics';
import { TelemetryQueryService } from './services/telemetry-query.service';

export interface StreamerAppDeps {
  db: Kysely<Database>;
  pool: Pool;
  logger: Logger;
  queue: QueueClient;
  config: Pick<
    StreamerConfig,
    | 'STREAMER_CONCURRENCY'
    | 'STREAMER_BATCH'
    | 'STREAMER_VISIBILITY'
    | 'STREAMER_WAIT'
    | 'TELEMETRY_RETENTION'
    | 'TELEMETRY_MAINTENANCE_INTERVAL'
    | 'SERVICE_TOKEN'
    | 'SERVICE_TOKEN_PREVIOUS'
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
  maintainer: PartitionMaintainer;
  /** Starts partition maintenance and the lease loops. */
  start(): Promise<void>;
  /** Stops leasing and finishes the batches in hand. */
  stop(): Promise<void>;
}

export function createApp(deps: StreamerAppDeps): StreamerApp {
  const { db, pool, logger, queue, config } = deps;
  const metrics = createMetrics('streamer');
  const streamerMetrics = createStreamerMetrics(metrics.registry);
  const ingest = new IngestService({
    pool,
    logger,
    metrics: streamerMetrics,
    retentionMs: config.TELEMETRY_RETENTION,
  });
  const maintainer = new PartitionMaintainer({
    pool,
    logger,
    metrics: streamerMetrics,
    retentionMs: config.TELEMETRY_RETENTION,
    intervalMs: config.TELEMETRY_MAINTENANCE_INTERVAL,
    onDropped: () => ingest.forgetPartitions(),
  });
  const queries = new TelemetryQueryService(db);
  let consumer: Consumer | undefined;
  const app = createServiceApp({
    service: 'streamer',
    logger,
    metrics,
    readiness: [
      { name: 'postgres', check: () => pingDatabase(pool) },
      { name: 'queue', check: () => queue.ready() },
    ],
    serviceToken: serviceTokenFrom(config),
    openapi: streamerApi,
    checkResponse: deps.checkResponse,
    routes: (app) => app.use(gpusRoutes(queries)),
  });
  return {
    app,
    metrics,
    streamerMetrics,
    ingest,
    maintainer,
    async start() {
      await maintainer
        .runOnce()
        .catch((error: unknown) => logger.warn({ err: error }, 'partition maintenance failed; will retry'));
      maintainer.start();
      consumer = createConsumer({
        client: queue,
        topic: TELEMETRY_TOPIC,
        consumer: deps.consumerName ?? 'streamer',
        concurrency: config.STREAMER_CONCURRENCY,
        batch: config.STREAMER_BATCH,
        visibilitySeconds: Math.ceil(config.STREAMER_VISIBILITY / 1000),
        waitSeconds: config.STREAMER_WAIT / 1000,
        logger,
        handle: (messages) => ingest.handle(messages),
      });
      consumer.start();
      logger.info(
        { concurrency: config.STREAMER_CONCURRENCY, batch: config.STREAMER_BATCH },
        'consuming telemetry',
      );
    },
    async stop() {
      maintainer.stop();
      await consumer?.stop();
    },
  };
}
