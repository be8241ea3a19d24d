import { waitFor } from '@gpu-telemetry/harness';
import { serviceAuthorization } from '@gpu-telemetry/service-kit';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { request as httpRequest } from 'undici';
import { serveQueue, startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';

/** Many consumers leasing in parallel over real HTTP connections. */
let queue: QueueTestApp;
let server: Awaited<ReturnType<typeof serveQueue>>;

beforeAll(async () => {
  queue = await startQueueTestApp({}, undefined);
  server = await serveQueue(queue);
});

afterAll(async () => {
  await server.close();
  await queue.close();
});

async function post(path: string, body: unknown) {
  const res = await httpRequest(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: serviceAuthorization(TEST_SERVICE_TOKEN) },
    body: JSON.stringify(body),
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test reads loosely shaped JSON
  return { status: res.statusCode, body: (await res.body.json()) as any };
}

/** Backends of this test's database waiting for a lock. */
async function waitingOnLocks(): Promise<number | undefined> {
  const { rows } = await queue.database.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  return rows[0]?.n;
}

describe('concurrent consumers', () => {
  it('deliver each message exactly once per valid lease, with nothing lost', async () => {
    const topic = 'concurrency';
    const total = 3000;
    for (let start = 0; start < total; start += 500) {
      const messages = Array.from({ length: 500 }, (_, i) => ({ payload: { n: start + i } }));
      expect((await post(`/v1/topics/${topic}/messages`, { messages })).body.accepted).toBe(500);
    }
    const seen = new Map<number, number>();
    const consumer = async (name: string) => {
      for (;;) {
        const lease = await post(`/v1/topics/${topic}/leases`, {
          consumer: name,
          max: 37,
          visibilitySeconds: 60,
        });
        if (lease.body.messages.length === 0) return;
        for (const m of lease.body.messages as { payload: { n: number } }[]) {
          seen.set(m.payload.n, (seen.get(m.payload.n) ?? 0) + 1);
        }
        // Ack every other lease, leave the rest in flight: neither may be delivered twice.
        if (seen.size % 2 === 0)
          expect((await post(`/v1/topics/${topic}/acks`, { leaseId: lease.body.leaseId })).status).toBe(200);
      }
    };
    await Promise.all(Array.from({ length: 12 }, (_, i) => consumer(`c${i}`)));
    expect(seen.size).toBe(total);
    expect([...seen.values()].every((count) => count === 1)).toBe(true);
  });

  it('lets racing ack and re-lease of an expired lease settle exactly one way', async () => {
    const topic = 'race';
    await post(`/v1/topics/${topic}/messages`, {
      messages: Array.from({ length: 200 }, (_, i) => ({ payload: i })),
    });
    const stale = await post(`/v1/topics/${topic}/leases`, {
      consumer: 'old',
      max: 200,
      visibilitySeconds: 1,
    });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const [ack, lease] = await Promise.all([
      post(`/v1/topics/${topic}/acks`, { leaseId: stale.body.leaseId }),
      post(`/v1/topics/${topic}/leases`, { consumer: 'new', max: 200, visibilitySeconds: 60 }),
    ]);
    const acked = ack.status === 200 ? ack.body.acked : 0;
    expect(acked + lease.body.messages.length).toBe(200);
    const { rows } = await queue.database.pool.query(
      'SELECT count(*)::int AS n FROM queue_messages WHERE topic = $1',
      [topic],
    );
    expect(rows[0].n).toBe(lease.body.messages.length);
  });

  it.each([
    ['extend', { visibilitySeconds: 60 }, 409],
    ['release', {}, 200],
  ] as const)(
    'lets a %s racing an ack of the whole lease wait its turn: no deadlock, no 5xx',
    async (operation, body, status) => {
      const topic = `deadlock-${operation}`;
      await post(`/v1/topics/${topic}/messages`, {
        messages: Array.from({ length: 50 }, (_, i) => ({ payload: i })),
      });
      const { leaseId, messages } = (
        await post(`/v1/topics/${topic}/leases`, { consumer: 'c', max: 50, visibilitySeconds: 60 })
      ).body as { leaseId: string; messages: { id: string }[] };
      const pool = queue.database.pool;
      // Another transaction holds the lease's last message (in key order, the order the ack takes
      // them), so the ack stops there, and the other call arrives while it is under way.
      const holder = await pool.connect();
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM queue_messages WHERE topic = $1 AND msg_uuid = $2 FOR UPDATE', [
        topic,
        messages
          .map((m) => m.id)
          .sort()
          .at(-1),
      ]);
      const ack = post(`/v1/topics/${topic}/acks`, { leaseId });
      await waitFor('the ack to wait for the held message', async () => (await waitingOnLocks()) === 1, {
        timeoutMs: 5_000,
        intervalMs: 10,
      });
      const other = post(`/v1/topics/${topic}/leases/${leaseId}/${operation}`, body);
      await waitFor(`the ${operation} to wait too`, async () => (await waitingOnLocks()) === 2, {
        timeoutMs: 5_000,
        intervalMs: 10,
      });
      await holder.query('COMMIT');
      holder.release();
      expect((await ack).status).toBe(200);
      expect((await ack).body).toEqual({ acked: 50 });
      expect((await other).status).toBe(status);
      if (operation === 'release') expect((await other).body).toEqual({ released: 0 });
    },
  );

  it('runs an ack that Postgres aborted to break a deadlock once more, instead of answering 500', async () => {
    const topic = 'deadlock-victim';
    await post(`/v1/topics/${topic}/messages`, { messages: [{ payload: 1 }, { payload: 2 }] });
    const { leaseId, messages } = (
      await post(`/v1/topics/${topic}/leases`, { consumer: 'c', max: 2, visibilitySeconds: 60 })
    ).body as { leaseId: string; messages: { id: string }[] };
    // A transaction that takes a message, then the lease row: the opposite order to the ack's.
    const holder = await queue.database.pool.connect();
    await holder.query('BEGIN');
    await holder.query('SELECT 1 FROM queue_messages WHERE topic = $1 AND msg_uuid = ANY($2) FOR UPDATE', [
      topic,
      messages.map((m) => m.id),
    ]);
    const ack = post(`/v1/topics/${topic}/acks`, { leaseId });
    await waitFor('the ack to wait for the held messages', async () => (await waitingOnLocks()) === 1, {
      timeoutMs: 5_000,
      intervalMs: 10,
    });
    // The ack has waited longest, so its deadlock check runs first and it is the one aborted.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await holder.query('SELECT 1 FROM queue_leases WHERE lease_id = $1 FOR UPDATE', [leaseId]);
    await holder.query('COMMIT');
    holder.release();
    const res = await ack;
    // Status and body together: a failure shows the problem's detail.
    expect({ status: res.status, body: res.body }).toEqual({ status: 200, body: { acked: 2 } });
  });
});
