import { ConfigError } from '@gpu-telemetry/config';
import { createDb } from '@gpu-telemetry/db';
import { createLogger, exitOnFatal, listen, onShutdown } from '@gpu-telemetry/service-kit';
import { createApp } from './app';
import { loadGatewayConfig } from './config';

async function main(): Promise<void> {
  const config = loadGatewayConfig();
  const logger = createLogger('gateway', config.LOG_LEVEL);
  exitOnFatal(logger);
  if (!config.GATEWAY_AUTH) logger.warn('GATEWAY_AUTH=false: the API is open to anyone who can reach it');
  const database = createDb(config.DATABASE_URL, {
    max: config.DATABASE_POOL_SIZE,
    applicationName: 'gateway',
    onError: (error) =>
      logger.warn(
        { error: error.message, code: (error as { code?: string }).code },
        'idle database connection lost',
      ),
  });
  const gateway = createApp({ db: database.db, pool: database.pool, logger, config });
  const server = await listen(gateway.handler, {
    port: config.PORT,
    host: config.HOST,
    logger,
    shutdownTimeoutMs: config.SHUTDOWN_TIMEOUT,
  });
  logger.info({ port: server.port }, 'gateway listening');
  onShutdown(logger, [
    { name: 'drain http', run: () => server.close() },
    { name: 'close upstream pools', run: () => gateway.close() },
    { name: 'close database', run: () => database.close() },
  ]);
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
