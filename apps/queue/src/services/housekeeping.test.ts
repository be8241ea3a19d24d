import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';

let queue: QueueTestApp;

beforeAll(async () => {
  queue = await startQueueTestApp();
});

afterAll(async () => {
  await queue.close();
});

const api = () => request(asService(queue.app));

async function leaseRows(): Promise<number> {
  const { rows } = await queue.database.pool.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM queue_leases',
  );
  return rows[0]?.n ?? 0;
}

describe('lease housekeeping', () => {
  it('forgets leases that ended an hour ago, and keeps the rest', async () => {
    await api().post('/v1/topics/kept/messages').send({ payload: 1 }).expect(201);
    await api().post('/v1/topics/kept/messages').send({ payload: 2 }).expect(201);
    const lease = () =>
      api()
        .post('/v1/topics/kept/leases')
        .send({ consumer: 'test', max: 1, visibilitySeconds: 30 })
        .expect(200)
        .then((res) => res.body.leaseId as string);
    const [ended, current] = [await lease(), await lease()];
    await queue.database.pool.query(
      `UPDATE queue_leases SET lease_until = now() - interval '2 hours' WHERE lease_id = $1`,
      [ended],
    );
    expect(await leaseRows()).toBe(2);
    await queue.housekeep();
    const { rows } = await queue.database.pool.query<{ lease_id: string }>(
      'SELECT lease_id FROM queue_leases',
    );
    expect(rows.map((r) => r.lease_id)).toEqual([current]);
  });

  it('counts a round that failed, and the next one runs as usual', async () => {
    await queue.database.pool.query('ALTER TABLE queue_leases RENAME TO queue_leases_away');
    try {
      await queue.housekeep(); // never rejects: the timer that calls it has nobody to tell
    } finally {
      await queue.database.pool.query('ALTER TABLE queue_leases_away RENAME TO queue_leases');
    }
    const metrics = (await api().get('/metrics').expect(200)).text;
    expect(metrics).toContain('queue_housekeeping_failures_total{service="queue"} 1');
    await queue.housekeep();
    expect((await api().get('/metrics').expect(200)).text).toContain(
      'queue_housekeeping_failures_total{service="queue"} 1',
    );
  });
});
