import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type CollectorApp,
  type CollectorDatabase,
  collectorEnv,
  createApp as createCollector,
} from '@gpu-telemetry/collector/app';
import { loadConfig } from '@gpu-telemetry/config';
import { createDb } from '@gpu-telemetry/db';
import { DcgmSimulator } from '@gpu-telemetry/dcgm-simulator';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createApp as createQueue, type QueueApp } from '@gpu-telemetry/queue/app';
import { QueueClient } from '@gpu-telemetry/queue-client';
import {
  createApp as createGateway,
  type GatewayApp,
  type GatewayDatabase,
  loadGatewayConfig,
} from '@gpu-telemetry/gateway/app';
import { checkResponses, createLogger, listen } from '@gpu-telemetry/service-kit';
import {
  type DocumentedResponses,
  documentedResponses,
  TEST_SERVICE_TOKEN,
} from '@gpu-telemetry/service-kit/testing';
import { createApp as createStreamer, type StreamerApp } from '@gpu-telemetry/streamer/app';

const logger = (service: string) => createLogger(service, process.env['TEST_LOG_LEVEL'] ?? 'silent');

/** A node:http server that can be stopped and started again on the same port (a queue "outage"). */
export class Restartable {
  private server: Server | undefined;
  port = 0;

  constructor(private readonly handler: Parameters<typeof createServer>[1]) {}

  async start(): Promise<string> {
    this.server = createServer(this.handler);
    this.server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve) => this.server?.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

export interface Pipeline {
  database: TestDatabase;
  simulator: DcgmSimulator;
  queue: QueueApp;
  queueServer: Restartable;
  queueUrl: string;
  collector: CollectorApp;
  collectorQueue: QueueClient;
  startStreamer(): Promise<StreamerApp>;
  close(): Promise<void>;
}

/** Simulated exporters -> collector -> queue -> streamer -> Postgres, all real, in one process. */
export async function startPipeline(options: {
  hosts: number;
  gpusPerHost: number;
  collectorEnv?: Record<string, string>;
}): Promise<Pipeline> {
  const database = await createTestDatabase({ max: 20 });
  const simulator = new DcgmSimulator({ hosts: options.hosts, gpusPerHost: options.gpusPerHost });
  const simulatorServer = new Restartable(simulator.handle);
  const simulatorUrl = await simulatorServer.start();
  const queue = createQueue({
    pool: database.pool,
    logger: logger('queue'),
    config: {
      DATABASE_URL: database.url,
      QUEUE_MAX_ATTEMPTS: 5,
      QUEUE_MAX_PAYLOAD: 256 * 1024,
      QUEUE_BODY_LIMIT: 32 * 1024 * 1024,
      QUEUE_FALLBACK_POLL: 1_000,
      SERVICE_TOKEN: TEST_SERVICE_TOKEN,
    },
  });
  await queue.start();
  const queueServer = new Restartable(queue.app);
  const queueUrl = await queueServer.start();
  const collectorQueue = new QueueClient({ url: queueUrl, timeoutMs: 2_000, token: TEST_SERVICE_TOKEN });
  // Its own pool, typed by its own tables, as in production.
  const collectorDb = createDb<CollectorDatabase>(database.url, { max: 5 });
  const collector = createCollector({
    db: collectorDb.db,
    pool: collectorDb.pool,
    logger: logger('collector'),
    queue: collectorQueue,
    config: loadConfig(collectorEnv, {
      DATABASE_URL: database.url,
      SERVICE_TOKEN: TEST_SERVICE_TOKEN,
      COLLECT_TARGETS: `${simulatorUrl}/hosts/{1..${options.hosts}}/metrics`,
      COLLECT_INTERVAL: '1h', // rounds are run by hand
      ...options.collectorEnv,
    }),
  });
  collector.publisher.start();
  const streamers: { app: StreamerApp; queue: QueueClient }[] = [];
  return {
    database,
    simulator,
    queue,
    queueServer,
    queueUrl,
    collector,
    collectorQueue,
    async startStreamer() {
      const client = new QueueClient({ url: queueUrl, token: TEST_SERVICE_TOKEN });
      const app = createStreamer({
        pool: database.pool,
        logger: logger('streamer'),
        queue: client,
        config: {
          STREAMER_CONCURRENCY: 2,
          STREAMER_BATCH: 5,
          STREAMER_VISIBILITY: 3_000,
          STREAMER_MAX_HANDLE: 600_000,
          STREAMER_WAIT: 1_000,
          TELEMETRY_RETENTION: 0,
          TELEMETRY_MAINTENANCE_INTERVAL: 3_600_000,
          SERVICE_TOKEN: TEST_SERVICE_TOKEN,
        },
      });
      await app.start();
      streamers.push({ app, queue: client });
      return app;
    },
    async close() {
      for (const s of streamers) {
        await s.app.stop();
        await s.queue.close();
      }
      await collector.stop(1_000);
      await collectorQueue.close();
      await collectorDb.close();
      await queue.stop();
      await queueServer.stop();
      await simulatorServer.stop();
      await database.drop();
    },
  };
}

export interface System {
  pipeline: Pipeline;
  streamer: StreamerApp;
  gateway: GatewayApp;
  /** The gateway's base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  /** Every answer through the gateway, held to the merged OpenAPI document it serves. */
  responses: DocumentedResponses;
  close(): Promise<void>;
}

/**
 * The whole system as users see it: the pipeline with one streamer, and the gateway in front of
 * queue, streamer and collector, listening on a loopback port, with `adminKey` as its bootstrap key.
 */
export async function startSystem(options: {
  hosts: number;
  gpusPerHost: number;
  adminKey: string;
}): Promise<System> {
  const pipeline = await startPipeline(options);
  const streamer = await pipeline.startStreamer();
  const streamerServer = new Restartable(streamer.app);
  const streamerUrl = await streamerServer.start();
  const collectorServer = new Restartable(pipeline.collector.app);
  const collectorUrl = await collectorServer.start();
  // Its own pool, typed by its own tables, as in production.
  const gatewayDb = createDb<GatewayDatabase>(pipeline.database.url, { max: 5 });
  const gateway = createGateway({
    db: gatewayDb.db,
    pool: gatewayDb.pool,
    logger: logger('gateway'),
    config: loadGatewayConfig({
      DATABASE_URL: pipeline.database.url,
      SERVICE_TOKEN: TEST_SERVICE_TOKEN,
      GATEWAY_ADMIN_KEY: options.adminKey,
      GATEWAY_QUEUE_URLS: pipeline.queueUrl,
      GATEWAY_STREAMER_URLS: streamerUrl,
      GATEWAY_COLLECTOR_URLS: collectorUrl,
    }),
  });
  const merged = await new Promise<object>((resolve, reject) => {
    const probe = createServer(gateway.app).listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      fetch(`http://127.0.0.1:${port}/openapi.json`)
        .then((res) => res.json() as Promise<object>)
        .then(resolve, reject)
        .finally(() => probe.close());
    });
  });
  const responses = documentedResponses(merged);
  const server = await listen(checkResponses(gateway.handler, responses.check), {
    port: 0,
    host: '127.0.0.1',
    logger: logger('gateway'),
  });
  return {
    pipeline,
    streamer,
    gateway,
    url: `http://127.0.0.1:${server.port}`,
    responses,
    close: async () => {
      await server.close();
      await gateway.close();
      await gatewayDb.close();
      await streamerServer.stop();
      await collectorServer.stop();
      await pipeline.close();
    },
  };
}
