import type { Database } from '@gpu-telemetry/db';
import { pingDatabase } from '@gpu-telemetry/db';
import type { QueueClient } from '@gpu-telemetry/queue-client';
import { createMetrics, createServiceApp, type Logger, type ServiceMetrics } from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';

export interface CollectorAppDeps {
  db: Kysely<Database>;
  pool: Pool;
  logger: Logger;
  queue: QueueClient;
}

export interface CollectorApp {
  app: Express;
  metrics: ServiceMetrics;
}

export function createApp(deps: CollectorAppDeps): CollectorApp {
  const metrics = createMetrics('collector');
  const app = createServiceApp({
    service: 'collector',
    logger: deps.logger,
    metrics,
    readiness: [
      { name: 'postgres', check: () => pingDatabase(deps.pool) },
      { name: 'queue', check: () => deps.queue.ready() },
    ],
    routes: () => undefined,
  });
  return { app, metrics };
}
