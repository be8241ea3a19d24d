import { pingDatabase } from '@gpu-telemetry/db';
import { MAX_BATCH } from '@gpu-telemetry/model';
import {
  createMetrics,
  createServiceApp,
  type Logger,
  type ResponseCheck,
  serviceTokenFrom,
} from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import type { Pool } from 'pg';
import { type QueueConfig, queueEnv } from './config';
import { queueApi } from './routes/topics.openapi';
import { publishRoutes } from './routes/publish.routes';
import { TOPICS_BODY_LIMIT, topicsRoutes } from './routes/topics.routes';
import { LeaseWaiters } from './services/lease-waiters';
import { PublishMemory } from './services/publish-memory';
import { PublishNotifier } from './services/publish-notifier';
import { createQueueMetrics } from './services/queue.metrics';
import { QueueService } from './services/queue.service';

export { loadQueueConfig, queueEnv } from './config';

export interface QueueAppDeps {
  pool: Pool;
  logger: Logger;
  config: Pick<
    QueueConfig,
    | 'DATABASE_URL'
    | 'QUEUE_MAX_ATTEMPTS'
    | 'QUEUE_MAX_PAYLOAD'
    | 'QUEUE_BODY_LIMIT'
    | 'QUEUE_FALLBACK_POLL'
    | 'SERVICE_TOKEN'
    | 'SERVICE_TOKEN_PREVIOUS'
  > &
    Partial<
      Pick<
        QueueConfig,
        'QUEUE_RESPONSE_LIMIT' | 'QUEUE_MAX_TOPICS' | 'QUEUE_PUBLISH_MEMORY' | 'QUEUE_BODY_TIMEOUT'
      >
    >;
  /** Tests: holds every answer to the OpenAPI document (see createServiceApp). */
  checkResponse?: ResponseCheck;
}

export interface QueueApp {
  app: Express;
  queue: QueueService;
  waiters: LeaseWaiters;
  notifier: PublishNotifier;
  /** Starts listening for other replicas' publishes. */
  start(): Promise<void>;
  /** Ends every long-poll (they answer empty) and stops listening; call before draining the server. */
  stop(): Promise<void>;
  /** Forgets leases that ended an hour ago (every minute once started); a failure is counted and logged. */
  housekeep(): Promise<void>;
}

export function createApp(deps: QueueAppDeps): QueueApp {
  const { pool, logger, config } = deps;
  const metrics = createMetrics('queue');
  const waiters = new LeaseWaiters();
  // Never below one body of the largest size, so that a lone publish of that size always fits.
  const publishMemory = new PublishMemory(
    Math.max(
      config.QUEUE_PUBLISH_MEMORY ?? queueEnv.shape.QUEUE_PUBLISH_MEMORY.parse(undefined),
      config.QUEUE_BODY_LIMIT,
    ),
  );
  let housekeeping: NodeJS.Timeout | undefined;
  const notifier = new PublishNotifier({
    connectionString: config.DATABASE_URL,
    pool,
    waiters,
    logger,
    onNotifyFailed: () => queueMetrics.notifyFailures.inc(),
  });
  // The depth gauge reads the service when scraped, after construction.
  const queueMetrics = createQueueMetrics(
    metrics.registry,
    async () => {
      const stats = await queue.stats();
      return stats.flatMap((s) => [
        { topic: s.topic, state: 'ready', count: s.ready },
        { topic: s.topic, state: 'delayed', count: s.delayed },
        { topic: s.topic, state: 'in_flight', count: s.inFlight },
        { topic: s.topic, state: 'dead', count: s.dead },
      ]);
    },
    () => notifier.listening,
    publishMemory,
  );
  const queue = new QueueService({
    db: pool,
    logger,
    waiters,
    notifier,
    metrics: queueMetrics,
    settings: {
      defaultMaxAttempts: config.QUEUE_MAX_ATTEMPTS,
      maxPayloadBytes: config.QUEUE_MAX_PAYLOAD,
      fallbackPollMs: config.QUEUE_FALLBACK_POLL,
      maxTopics: config.QUEUE_MAX_TOPICS ?? queueEnv.shape.QUEUE_MAX_TOPICS.parse(undefined),
      maxResponseBytes: config.QUEUE_RESPONSE_LIMIT ?? queueEnv.shape.QUEUE_RESPONSE_LIMIT.parse(undefined),
    },
  });
  const app = createServiceApp({
    service: 'queue',
    logger,
    metrics,
    bodyLimit: TOPICS_BODY_LIMIT,
    readiness: [{ name: 'postgres', check: () => pingDatabase(pool) }],
    serviceToken: serviceTokenFrom(config),
    // Publish reads its own body and checks its own media type, so that it counts every refusal.
    binaryBodyRoutes: (app) =>
      app.use(
        publishRoutes(queue, {
          bodyLimit: config.QUEUE_BODY_LIMIT,
          maxMessages: MAX_BATCH,
          maxPayloadBytes: config.QUEUE_MAX_PAYLOAD,
          metrics: queueMetrics,
          memory: publishMemory,
          bodyTimeoutMs: config.QUEUE_BODY_TIMEOUT ?? queueEnv.shape.QUEUE_BODY_TIMEOUT.parse(undefined),
        }),
      ),
    routes: (app) => app.use(topicsRoutes(queue)),
    openapi: queueApi,
    checkResponse: deps.checkResponse,
  });
  // No ETags: no queue answer is worth revalidating, and Express would SHA-1 every body (a whole
  // lease of payloads) to make one.
  app.set('etag', false);
  const housekeep = () =>
    queue.forgetEndedLeases(3_600).then(
      () => undefined,
      (error: unknown) => {
        queueMetrics.housekeepingFailures.inc();
        logger.warn({ err: error }, 'lease housekeeping failed; tried again in a minute');
      },
    );
  return {
    app,
    queue,
    waiters,
    notifier,
    housekeep,
    start: async () => {
      await notifier.start();
      // Lease rows that ended an hour ago are only bookkeeping; drop them every minute.
      housekeeping = setInterval(() => void housekeep(), 60_000);
      housekeeping.unref();
    },
    stop: async () => {
      clearInterval(housekeeping);
      waiters.close();
      await notifier.stop();
    },
  };
}
