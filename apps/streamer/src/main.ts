import { hostname } from 'node:os';
import { createDb } from '@gpu-telemetry/db';
import { QueueClient } from '@gpu-telemetry/queue-client';
import {
  createLogger,
  exitOnFatal,
  LARGE_REQUEST_HEADERS,
  listen,
  onShutdown,
  runMain,
} from '@gpu-telemetry/service-kit';
import { createApp } from './app';
import { loadStreamerConfig } from './config';

async function main(): Promise<void> {
  const config = loadStreamerConfig();
  const logger = createLogger('streamer', config.LOG_LEVEL);
  exitOnFatal(logger);
  const database = createDb(config.DATABASE_URL, {
    max: config.DATABASE_POOL_SIZE,
    applicationName: 'streamer',
    logger,
  });
  // Each lease loop may hold a long-poll and, while its batch runs, a heartbeat or an ack: two
  // connections a loop, and a few more, so that /readyz and settling never queue behind
  // long-polls (with 16 loops they took all 16 of the default pool).
  const queue = new QueueClient({
    url: config.QUEUE_URL,
    token: config.SERVICE_TOKEN,
    connections: 2 * config.STREAMER_CONCURRENCY + 4,
  });
  const streamer = createApp({
    pool: database.pool,
    logger,
    queue,
    config,
    consumerName: hostname(),
  });
  // Listening first: the API answers (and probes pass) while the first maintenance round runs,
  // which compacts every chunk that closed while no streamer ran, minutes after a long outage.
  const server = await listen(streamer.app, {
    port: config.PORT,
    host: config.HOST,
    logger,
    // Grafana's label-value lists send a variable's every value in the URL: Prometheus takes 1 MiB.
    maxHeaderBytes: LARGE_REQUEST_HEADERS,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT,
  });
  logger.info({ port: server.port }, 'streamer listening');
  onShutdown(
    logger,
    [
      { name: 'finish batches in hand', run: () => streamer.stop() },
      { name: 'drain http', run: () => server.close() },
      { name: 'close queue client', run: () => queue.close() },
      { name: 'close database', run: () => database.close() },
    ],
    { deadlineMs: config.SHUTDOWN_TIMEOUT + 10_000 },
  );
  await streamer.start();
}

runMain(main);
