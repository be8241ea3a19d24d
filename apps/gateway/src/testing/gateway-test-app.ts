import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger, type Logger } from '@gpu-telemetry/service-kit';
import { createApp, type GatewayApp } from '../app';
import { loadGatewayConfig } from '../config';

/** The gateway on a test database, configured from `env` exactly as in production. */
export function createTestGateway(
  database: TestDatabase,
  env: Record<string, string>,
  logger: Logger = createLogger('gateway', 'silent'),
): GatewayApp {
  return createApp({
    db: database.db,
    pool: database.pool,
    logger,
    config: loadGatewayConfig({ DATABASE_URL: database.url, ...env }),
  });
}

/** Listens on a free loopback port; returns the base URL. */
export async function serve(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
