import type { Database } from '@gpu-telemetry/db';
import { pingDatabase } from '@gpu-telemetry/db';
import {
  createMetrics,
  createServiceApp,
  type Logger,
  type ServiceMetrics,
} from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';

export interface GatewayAppDeps {
  db: Kysely<Database>;
  pool: Pool;
  logger: Logger;
}

export interface GatewayApp {
  app: Express;
  metrics: ServiceMetrics;
}

export function createApp(deps: GatewayAppDeps): GatewayApp {
  const metrics = createMetrics('gateway');
  const app = createServiceApp({
    service: 'gateway',
    logger: deps.logger,
    metrics,
    readiness: [{ name: 'postgres', check: () => pingDatabase(deps.pool) }],
    routes: () => undefined,
  });
  return { app, metrics };
}
