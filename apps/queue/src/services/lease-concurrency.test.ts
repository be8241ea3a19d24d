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
});
