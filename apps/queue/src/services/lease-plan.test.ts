import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { PoolClient } from 'pg';

/**
 * The lease must walk queue_messages_lease_idx in order and stop after `max` rows, whatever the
 * planner believes about the table. A plan with a Sort or a Seq Scan reads the whole backlog on
 * every lease: fine on a small table, a collapse at a few hundred thousand rows.
 */
let database: TestDatabase;
const BACKLOG = 100_000;

beforeAll(async () => {
  database = await createTestDatabase();
  // Statistics must stay as each scenario leaves them: no autovacuum or autoanalyze behind our back.
  await database.pool.query('ALTER TABLE queue_messages SET (autovacuum_enabled = false)');
}, 60_000);

afterAll(async () => {
  await database.drop();
});

/** Plans of the statements inside queue_lease(), via auto_explain sent to this client as notices. */
async function leasePlans(client: PoolClient, topic: string): Promise<string> {
  const plans: string[] = [];
  const onNotice = (notice: { message?: string }) => plans.push(notice.message ?? '');
  client.on('notice', onNotice);
  try {
    await client.query(`LOAD 'auto_explain'`);
    await client.query(`SET auto_explain.log_min_duration = 0`);
    await client.query(`SET auto_explain.log_nested_statements = on`);
    await client.query(`SET auto_explain.log_level = notice`);
    await client.query(`SET client_min_messages = notice`);
    const { rows } = await client.query(
      `SELECT * FROM queue_lease($1, 100, interval '30 seconds', $2, 'plan-test', 5)`,
      [topic, randomUUID()],
    );
    expect(rows).toHaveLength(100);
    return plans.filter((plan) => plan.includes('queue_messages')).join('\n');
  } finally {
    await client.query(`SET client_min_messages = warning`);
    client.off('notice', onNotice);
  }
}

function expectIndexOrderedPlan(plan: string) {
  expect(plan).toContain('Index Scan using queue_messages_lease_idx');
  expect(plan).not.toMatch(/\bSort\b/);
  expect(plan).not.toMatch(/Seq Scan on queue_messages/);
  expect(plan).not.toMatch(/Bitmap Heap Scan on queue_messages/);
  expect(plan).not.toMatch(/Hash Join/);
}

async function backlog(topic: string, rows: number, visibleAgo = '1 minute') {
  await database.pool.query(
    `INSERT INTO queue_messages (topic, msg_uuid, payload, visible_at)
     SELECT $1, gen_random_uuid(), json_build_object('n', n), now() - $2::interval + n * interval '1 microsecond'
     FROM generate_series(1, $3) AS n`,
    [topic, visibleAgo, rows],
  );
}

describe('the lease plan', () => {
  it('is an ordered index walk on a freshly analysed backlog', async () => {
    await backlog('fresh', BACKLOG);
    await database.pool.query('ANALYZE queue_messages');
    const client = await database.pool.connect();
    try {
      expectIndexOrderedPlan(await leasePlans(client, 'fresh'));
    } finally {
      client.release();
    }
  }, 60_000);

  it('stays an ordered index walk when statistics say the table is empty', async () => {
    await database.pool.query('TRUNCATE queue_messages');
    await database.pool.query('ANALYZE queue_messages');
    await backlog('stale', BACKLOG);
    const client = await database.pool.connect();
    try {
      expectIndexOrderedPlan(await leasePlans(client, 'stale'));
    } finally {
      client.release();
    }
  }, 60_000);

  it('stays an ordered index walk when one topic dominates and most rows are in flight', async () => {
    await database.pool.query('TRUNCATE queue_messages');
    await backlog('busy', BACKLOG, '-10 minutes'); // all in flight: visible only in the future
    await backlog('busy-ready', 1_000);
    await database.pool.query('ANALYZE queue_messages');
    const client = await database.pool.connect();
    try {
      expectIndexOrderedPlan(await leasePlans(client, 'busy-ready'));
    } finally {
      client.release();
    }
  }, 60_000);
});
