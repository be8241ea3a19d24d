import { createDb } from '@gpu-telemetry/db';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger, exitOnFatal, listen, onShutdown, runMain } from '@gpu-telemetry/service-kit';
import { createApp } from './app';
import type { CollectorDatabase } from './collector.tables';
import { loadCollectorConfig } from './config';

async function main(): Promise<void> {
  const config = loadCollectorConfig();
  const logger = createLogger('collector', config.LOG_LEVEL);
  exitOnFatal(logger);
  const database = createDb<CollectorDatabase>(config.DATABASE_URL, {
    max: config.DATABASE_POOL_SIZE,
    applicationName: 'collector',
    logger,
  });
  const queue = new QueueClient({ url: config.QUEUE_URL, token: config.SERVICE_TOKEN });
  const collector = createApp({ db: database.db, pool: database.pool, logger, queue, config });
  await collector.start();
  const server = await listen(collector.app, {
    port: config.PORT,
    host: config.HOST,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT,
  });
  logger.info({ port: server.port }, 'collector listening');
  onShutdown(
    logger,
    [
      { name: 'stop scraping and flush', run: () => collector.stop(config.SHUTDOWN_TIMEOUT) },
      { name: 'drain http', run: () => server.close() },
      { name: 'close queue client', run: () => queue.close() },
      { name: 'close database', run: () => database.close() },
    ],
    { deadlineMs: config.SHUTDOWN_TIMEOUT + 10_000 },
  );
}

runMain(main);
