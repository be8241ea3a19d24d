import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { QueueDatabase } from '../queue.tables';
import { Pool, type PoolClient } from 'pg';
import { ackMessages, extendLease, nackMessages, releaseLease } from './queue.queries';

/**
 * The lease must walk queue_messages_lease_idx in order and stop after `max` rows, whatever the
 * planner believes about the table. A plan with a Sort or a Seq Scan reads the whole backlog on
 * every lease: fine on a small table, a collapse at a few hundred thousand rows.
 */
let database: TestDatabase<QueueDatabase>;
const BACKLOG = 100_000;

beforeAll(async () => {
  database = await createTestDatabase<QueueDatabase>();
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
      `SELECT * FROM queue_lease($1, 100, interval '30 seconds', $2, 'plan-test', 5, 4194304)`,
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

describe('the settle plans', () => {
  it("find a lease's rows by primary key when statistics say the table is empty", async () => {
    await database.pool.query('TRUNCATE queue_messages');
    await database.pool.query('ANALYZE queue_messages');
    await backlog('settle', BACKLOG);
    // One connection with auto_explain on: every statement's plan arrives as a notice.
    const pool = new Pool({ connectionString: database.url, max: 1 });
    const plans: string[] = [];
    const session = await pool.connect();
    session.on('notice', (notice) => plans.push(notice.message ?? ''));
    await session.query(
      `LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = notice; SET client_min_messages = notice`,
    );
    session.release();
    const leaseOf = async () => {
      const leaseId = randomUUID();
      const { rows } = await pool.query<{ msg_uuid: string }>(
        `SELECT msg_uuid FROM queue_lease('settle', 100, interval '30 seconds', $1, 'plan-test', 5, 4194304)`,
        [leaseId],
      );
      expect(rows).toHaveLength(100);
      return { leaseId, ids: rows.map((r) => r.msg_uuid) };
    };
    try {
      const a = await leaseOf();
      const b = await leaseOf();
      const c = await leaseOf();
      const topic = 'settle';
      const calls: [string, () => Promise<unknown>][] = [
        ['extend', () => extendLease(pool, { topic, leaseId: a.leaseId, visibilitySeconds: 60 })],
        [
          'nack',
          () =>
            nackMessages(pool, {
              topic,
              leaseId: a.leaseId,
              ids: a.ids.slice(0, 10),
              delaySeconds: 0,
              reason: 'plan test',
              defaultMaxAttempts: 5,
              deadLetter: false,
            }),
        ],
        ['ack', () => ackMessages(pool, { topic, leaseId: a.leaseId })],
        ['ack of named ids', () => ackMessages(pool, { topic, leaseId: b.leaseId, ids: b.ids })],
        ['release', () => releaseLease(pool, { topic, leaseId: c.leaseId })],
      ];
      for (const [name, call] of calls) {
        plans.length = 0;
        await call();
        const plan = plans.filter((p) => /(Update|Delete) on queue_messages/.test(p)).join('\n');
        expect({ name, usesKey: plan.includes('queue_messages_pkey') }).toEqual({ name, usesKey: true });
        expect(plan).not.toMatch(/Seq Scan on queue_messages|Bitmap Heap Scan on queue_messages|lease_idx/);
      }
    } finally {
      await pool.end();
    }
  }, 60_000);
});
