import type { RequestListener } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { documentedResponses, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp, type CollectorApp, type CollectorAppDeps } from '../app';
import type { CollectorDatabase } from '../collector.tables';
import { loadCollectorConfig } from '../config';
import { collectorApi } from '../routes/collector.openapi';

/**
 * Every answer of the test apps is held to the OpenAPI document: one that does not match is
 * answered as a 500 naming why, and fails the test that caused it.
 */
const responses = documentedResponses(collectorApi);
afterEach(() => responses.assertNone());

/**
 * The collector on a test database, configured from `env` exactly as in production (`resolve`: its
 * DNS, where a test names the addresses).
 */
export function createTestCollector(
  database: TestDatabase<CollectorDatabase>,
  queue: QueueClient,
  env: Record<string, string> = {},
  resolve?: CollectorAppDeps['resolve'],
): CollectorApp {
  return createApp({
    db: database.db,
    pool: database.pool,
    logger: createLogger('collector', 'silent'),
    queue,
    config: loadCollectorConfig({ DATABASE_URL: database.url, SERVICE_TOKEN: TEST_SERVICE_TOKEN, ...env }),
    checkResponse: responses.check,
    ...(resolve ? { resolve } : {}),
  });
}

/**
 * A queue that takes every publish (201, every message accepted), handing each message's payload
 * to `take`, and answers any other call as healthy.
 */
export function fakeQueue(take: (payload: Record<string, unknown>) => void): RequestListener {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST') return void res.writeHead(200).end('{"status":"ok"}');
      const { messages } = JSON.parse(Buffer.concat(chunks).toString()) as {
        messages: { id: string; payload: Record<string, unknown> }[];
      };
      for (const m of messages) take(m.payload);
      res
        .writeHead(201, { 'content-type': 'application/json' })
        .end(JSON.stringify({ accepted: messages.length, duplicates: 0, ids: messages.map((m) => m.id) }));
    });
  };
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
