import { createDb } from '@gpu-telemetry/db';
import type { TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { createApp } from '../app';
import type { StreamerDatabase } from '../streamer.database';
import { STREAMER_TEST_CONFIG } from './streamer-test-app';

/**
 * The plans Postgres really runs for an endpoint, as auto_explain logs them: for tests that hold
 * a query to its indexes. `logPlans` turns the logging on for every later connection to the
 * template's clones; `plansFor` calls one path of a streamer over that database and returns the
 * plans of the statements that mention `table`.
 */
export async function logPlans(template: TestDatabase<StreamerDatabase>): Promise<void> {
  const name = template.name;
  await template.pool.query(`ALTER DATABASE ${name} SET session_preload_libraries = 'auto_explain'`);
  await template.pool.query(`ALTER DATABASE ${name} SET auto_explain.log_min_duration = 0`);
  await template.pool.query(`ALTER DATABASE ${name} SET auto_explain.log_level = 'notice'`);
  await template.pool.query(`ALTER DATABASE ${name} SET client_min_messages = 'notice'`);
}

export async function plansFor(
  template: TestDatabase<StreamerDatabase>,
  path: string,
  table: string,
): Promise<string> {
  const plans: string[] = [];
  const database = createDb<StreamerDatabase>(template.url, { max: 2 });
  database.pool.on('connect', (client) => {
    client.on('notice', (notice) => plans.push(notice.message ?? ''));
    // A statement sent with parameters runs in the unnamed portal, and auto_explain logs its plan
    // when that portal is dropped: the next Bind does that, a simple query or COMMIT does not send
    // it on. So each such statement is followed by a no-op one, and its plan is seen.
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      const result = query(...args);
      const config = args[0] as { values?: unknown } | undefined;
      if (!(result instanceof Promise) || typeof config !== 'object' || !config?.values) return result;
      return result.then(async (rows: unknown) => {
        await query({ text: 'SELECT $1::int AS flush', values: [0] });
        return rows;
      });
    };
  });
  const queue = new QueueClient({ url: 'http://127.0.0.1:9' });
  const { app } = createApp({
    pool: database.pool,
    logger: createLogger('streamer', 'silent'),
    queue,
    config: STREAMER_TEST_CONFIG,
  });
  try {
    await request(asService(app)).get(path).expect(200);
    return plans.filter((plan) => plan.includes(table)).join('\n');
  } finally {
    await queue.close();
    await database.close();
  }
}
