import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { documentedResponses, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp, type CollectorApp } from '../app';
import type { CollectorDatabase } from '../collector.tables';
import { loadCollectorConfig } from '../config';
import { collectorApi } from '../routes/collector.openapi';

/**
 * Every answer of the test apps is held to the OpenAPI document: one that does not match is
 * answered as a 500 naming why, and fails the test that caused it.
 */
const responses = documentedResponses(collectorApi);
afterEach(() => responses.assertNone());

/** The collector on a test database, configured from `env` exactly as in production. */
export function createTestCollector(
  database: TestDatabase<CollectorDatabase>,
  queue: QueueClient,
  env: Record<string, string> = {},
): CollectorApp {
  return createApp({
    db: database.db,
    pool: database.pool,
    logger: createLogger('collector', 'silent'),
    queue,
    config: loadCollectorConfig({ DATABASE_URL: database.url, SERVICE_TOKEN: TEST_SERVICE_TOKEN, ...env }),
    checkResponse: responses.check,
  });
}

/** The collector's HTTP app on a fresh database, its queue a closed port. */
export async function startCollectorTestApp(
  env: Record<string, string> = {},
): Promise<{ collector: CollectorApp; database: TestDatabase<CollectorDatabase>; close(): Promise<void> }> {
  const database = await createTestDatabase<CollectorDatabase>();
  const queue = new QueueClient({ url: 'http://127.0.0.1:9', token: TEST_SERVICE_TOKEN });
  return {
    collector: createTestCollector(database, queue, env),
    database,
    close: async () => {
      await queue.close();
      await database.drop();
    },
  };
}
