import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';
import { sharedRead } from './queue.metrics';

/**
 * Topic depth is read on every /metrics scrape and GET /v1/topics. Once ANALYZE has seen one topic
 * hold the whole table (the others known, their messages consumed), a plan free to choose scanned all of queue_messages twice per
 * topic (1,000 topics over 50,000 messages in flight: 8.7 s a scrape). The depth must stay an
 * index range per topic, and be right.
 */
let queue: QueueTestApp;
const TOPICS = 300;
const IN_FLIGHT = 20_000;

beforeAll(async () => {
  queue = await startQueueTestApp();
  const { pool } = queue.database;
  await pool.query('ALTER TABLE queue_messages SET (autovacuum_enabled = false)');
  // Many topics, each with one message published and consumed: known topics, no rows left ...
  for (let i = 0; i < TOPICS; i += 50)
    await Promise.all(
      Array.from({ length: 50 }, async (_, k) => {
        const topic = `quiet-${i + k}`;
        await api()
          .post(`/v1/topics/${topic}/messages`)
          .send({ messages: [{ payload: i + k }] })
          .expect(201);
        const { body } = await api()
          .post(`/v1/topics/${topic}/leases`)
          .send({ consumer: 'stats-test', max: 1 })
          .expect(200);
        await api().post(`/v1/topics/${topic}/acks`).send({ leaseId: body.leaseId }).expect(200);
      }),
    );
  // ... and one busy topic whose messages are all leased.
  for (let i = 0; i < IN_FLIGHT; i += 1000)
    await api()
      .post('/v1/topics/busy/messages')
      .send({ messages: Array.from({ length: 1000 }, (_, k) => ({ payload: i + k })) })
      .expect(201);
  for (let leased = 0; leased < IN_FLIGHT; leased += 1000)
    await api()
      .post('/v1/topics/busy/leases')
      .send({ consumer: 'stats-test', max: 1000, visibilitySeconds: 600 })
      .expect(200);
  await pool.query('ANALYZE queue_messages');
}, 120_000);

afterAll(async () => {
  await queue.close();
});

const api = () => request(asService(queue.app));

/** Buffers Postgres touched for the depth of every topic (EXPLAIN counts the function's own queries). */
async function statsBuffers(): Promise<number> {
  const { rows } = await queue.database.pool.query<{ 'QUERY PLAN': [{ Plan: Record<string, number> }] }>(
    'EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM queue_topic_stats(NULL)',
  );
  const plan = rows[0]!['QUERY PLAN'][0].Plan;
  return (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0);
}

describe('topic depth over many topics and a large backlog in one', () => {
  it('reads each topic by its own index range, not the whole table per topic', async () => {
    const { rows } = await queue.database.pool.query<{ pages: number }>(
      `SELECT relpages AS pages FROM pg_class WHERE relname = 'queue_messages'`,
    );
    const tablePages = rows[0]!.pages;
    expect(tablePages).toBeGreaterThan(50);
    // The busy topic's rows are fetched a few times (a buffer each: its in-flight and not-visible
    // counts), every other topic costs a few index pages. A scan of the table per topic would
    // touch TOPICS x tablePages.
    const buffers = await statsBuffers();
    expect(buffers).toBeLessThan(4 * IN_FLIGHT + 20 * TOPICS);
    expect(buffers).toBeLessThan((TOPICS * tablePages) / 4);
    // The same statement left to the planner, as it was: the table over and over.
    await queue.database.pool.query(`ALTER FUNCTION queue_topic_stats(text) RESET enable_seqscan`);
    try {
      expect(await statsBuffers()).toBeGreaterThan(TOPICS * tablePages);
    } finally {
      await queue.database.pool.query(`ALTER FUNCTION queue_topic_stats(text) SET enable_seqscan = off`);
    }
  });

  it('says the right depth on GET /v1/topics and /metrics', async () => {
    const { body } = await api().get('/v1/topics').expect(200);
    const byTopic = new Map((body.topics as { topic: string }[]).map((t) => [t.topic, t]));
    expect(byTopic.size).toBe(TOPICS + 1);
    expect(byTopic.get('busy')).toMatchObject({ ready: 0, inFlight: IN_FLIGHT, delayed: 0, dead: 0 });
    expect(byTopic.get('quiet-7')).toMatchObject({ ready: 0, inFlight: 0, delayed: 0, dead: 0 });
    const text = (await api().get('/metrics').expect(200)).text;
    expect(text).toMatch(
      new RegExp(`^queue_depth\\{topic="busy",state="in_flight"[^}]*\\} ${IN_FLIGHT}$`, 'm'),
    );
    expect(text).toMatch(/^queue_depth\{topic="quiet-299",state="ready"[^}]*\} 0$/m);
  });
});

describe('sharedRead', () => {
  it('runs one read for callers that ask while it runs, and a new one after', async () => {
    let reads = 0;
    let finish: (depth: { topic: string; state: string; count: number }[]) => void = () => undefined;
    const read = sharedRead(
      () =>
        new Promise((resolve) => {
          reads++;
          finish = resolve;
        }),
    );
    const asked = Array.from({ length: 12 }, () => read());
    expect(reads).toBe(1);
    finish([{ topic: 't', state: 'ready', count: 3 }]);
    for (const depth of await Promise.all(asked))
      expect(depth).toEqual([{ topic: 't', state: 'ready', count: 3 }]);
    const later = read();
    expect(reads).toBe(2);
    finish([]);
    expect(await later).toEqual([]);
  });

  it('lets every caller see a failed read fail, and tries again on the next ask', async () => {
    let reads = 0;
    const read = sharedRead(async () => {
      reads++;
      if (reads === 1) throw new Error('database gone');
      return [];
    });
    const results = await Promise.allSettled([read(), read()]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await read()).toEqual([]);
    expect(reads).toBe(2);
  });
});
