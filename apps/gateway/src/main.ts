import { createDb } from '@gpu-telemetry/db';
import { createLogger, exitOnFatal, listen, onShutdown, runMain } from '@gpu-telemetry/service-kit';
import { createApp, GATEWAY_SERVE_OPTIONS } from './app';
import { loadGatewayConfig } from './config';
import type { GatewayDatabase } from './gateway.tables';

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger('gateway', config.LOG_LEVEL);
  exitOnFatal(logger);
  if (!config.GATEWAY_AUTH) logger.warn('GATEWAY_AUTH=false: the API is open to anyone who can reach it');
  const database = createDb<GatewayDatabase>(config.DATABASE_URL, {
    max: config.DATABASE_POOL_SIZE,
    applicationName: 'gateway',
    logger,
  });
  const gateway = createApp({ db: database.db, pool: database.pool, logger, config });
  gateway.start();
  const server = await listen(gateway.handler, {
    port: config.PORT,
    host: config.HOST,
    logger,
    ...GATEWAY_SERVE_OPTIONS,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT,
  });
  gateway.attach(server.server);
  logger.info({ port: server.port }, 'gateway listening');
  onShutdown(
    logger,
    [
      { name: 'drain http', run: () => server.close() },
      { name: 'close upstream pools', run: () => gateway.close() },
      { name: 'close database', run: () => database.close() },
    ],
    { deadlineMs: config.SHUTDOWN_TIMEOUT + 10_000 },
  );
}

runMain(main);
