import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger, listen, type RunningServer } from '@gpu-telemetry/service-kit';
import { documentedResponses, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp, type QueueApp, type QueueAppDeps } from '../app';
import type { QueueDatabase } from '../queue.tables';
import { queueApi } from '../routes/topics.openapi';

export interface QueueTestApp extends QueueApp {
  database: TestDatabase<QueueDatabase>;
  close(): Promise<void>;
}

export const TEST_CONFIG: Omit<QueueAppDeps['config'], 'DATABASE_URL'> = {
  QUEUE_MAX_ATTEMPTS: 5,
  QUEUE_MAX_PAYLOAD: 256 * 1024,
  QUEUE_BODY_LIMIT: 32 * 1024 * 1024,
  QUEUE_FALLBACK_POLL: 5_000,
  SERVICE_TOKEN: TEST_SERVICE_TOKEN,
};

/**
 * Every answer of the test apps is held to the OpenAPI document: one that does not match is
 * answered as a 500 naming why, and fails the test that caused it.
 */
const responses = documentedResponses(queueApi);
afterEach(() => responses.assertNone());

/** The real queue app on a fresh database of its own. */
export async function startQueueTestApp(
  config: Partial<QueueAppDeps['config']> = {},
  database?: TestDatabase<QueueDatabase>,
): Promise<QueueTestApp> {
  const db = database ?? (await createTestDatabase<QueueDatabase>({ max: 10 }));
  const queue = createApp({
    pool: db.pool,
    logger: createLogger('queue', process.env['TEST_LOG_LEVEL'] ?? 'silent'),
    config: { ...TEST_CONFIG, DATABASE_URL: db.url, ...config },
    checkResponse: responses.check,
  });
  await queue.start();
  return {
    ...queue,
    database: db,
    close: async () => {
      await queue.stop();
      if (!database) await db.drop();
    },
  };
}

/** Listening on a real port, for tests that need concurrent or long-lived connections. */
export async function serveQueue(queue: QueueApp): Promise<RunningServer & { url: string }> {
  const server = await listen(queue.app, {
    port: 0,
    host: '127.0.0.1',
    logger: createLogger('queue', 'silent'),
  });
  return { ...server, url: `http://127.0.0.1:${server.port}` };
}
