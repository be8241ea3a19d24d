import { createMigrator } from '@gpu-telemetry/db';
import { createEmptyTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { createApp, type StreamerApp } from '../app';
import { STREAMER_TEST_CONFIG } from './streamer-test-app';

/**
 * For a test file that migrates down and up: a database of its own, migrated to the latest
 * version before its tests and dropped after them, and a streamer over it whose ingest the tests
 * call directly (its queue is never reached).
 */
export function migratedDatabase(): { database: () => TestDatabase; streamer: () => StreamerApp } {
  let database: TestDatabase | undefined;
  const queue = new QueueClient({ url: 'http://127.0.0.1:9' });
  beforeAll(async () => {
    database = await createEmptyTestDatabase();
    const { error } = await createMigrator(database.db).migrateToLatest();
    if (error) throw error;
  }, 60_000);
  afterAll(async () => {
    await queue.close();
    await database?.drop();
  });
  const current = () => {
    if (!database) throw new Error('the database is made in beforeAll');
    return database;
  };
  return {
    database: current,
    streamer: () =>
      createApp({
        pool: current().pool,
        logger: createLogger('streamer', 'silent'),
        queue,
        config: { ...STREAMER_TEST_CONFIG, TELEMETRY_RETENTION: 0 },
      }),
  };
}
