import { createDb } from '@gpu-telemetry/db';
import { createLogger, exitOnFatal, listen, onShutdown, runMain } from '@gpu-telemetry/service-kit';
import { createApp } from './app';
import { loadQueueConfig } from './config';
import type { QueueDatabase } from './queue.tables';

async function main(): Promise<void> {
  const config = loadQueueConfig();
  const logger = createLogger('queue', config.LOG_LEVEL);
  exitOnFatal(logger);
  const database = createDb<QueueDatabase>(config.DATABASE_URL, {
    max: config.DATABASE_POOL_SIZE,
    applicationName: 'queue',
    logger,
  });
  const queue = createApp({ pool: database.pool, logger, config });
  await queue.start();
  const server = await listen(queue.app, {
    port: config.PORT,
    host: config.HOST,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT,
  });
  logger.info({ port: server.port }, 'queue listening');
  onShutdown(
    logger,
    [
      { name: 'end long-polls', run: () => queue.stop() },
      { name: 'drain http', run: () => server.close() },
      { name: 'close database', run: () => database.close() },
    ],
    { deadlineMs: config.SHUTDOWN_TIMEOUT + 10_000 },
  );
}

runMain(main);
