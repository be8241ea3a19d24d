import fc from 'fast-check';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';

/**
 * Random and malformed input against every queue endpoint: the answer is always a 2xx or a 4xx
 * problem, never a 5xx, and the service keeps answering.
 */
let queue: QueueTestApp;

beforeAll(async () => {
  queue = await startQueueTestApp({ QUEUE_BODY_LIMIT: 256 * 1024 });
});

afterAll(async () => {
  await queue.close();
});

const endpoints: [method: 'post' | 'put' | 'get' | 'delete', path: string][] = [
  ['post', '/v1/topics/fuzz/messages'],
  ['post', '/v1/topics/fuzz/leases'],
  ['post', '/v1/topics/fuzz/acks'],
  ['post', '/v1/topics/fuzz/nacks'],
  ['post', '/v1/topics/fuzz/leases/00000000-0000-4000-8000-000000000000/extend'],
  ['post', '/v1/topics/fuzz/leases/00000000-0000-4000-8000-000000000000/release'],
  ['put', '/v1/topics/fuzz'],
  ['post', '/v1/topics/fuzz/dead/redrive'],
  ['delete', '/v1/topics/fuzz/dead'],
];

async function expectSane(res: request.Response) {
  expect(res.status).toBeLessThan(500);
  if (res.status >= 400) expect(res.headers['content-type']).toContain('application/problem+json');
}

describe('hostile input', () => {
  it('answers random JSON values with 2xx or 4xx, never 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...endpoints),
        fc.jsonValue({ maxDepth: 6 }),
        async ([method, path], body) => {
          await expectSane(
            await request(asService(queue.app))
              [method](path)
              .set('content-type', 'application/json')
              .send(JSON.stringify(body)),
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('answers objects with plausible fields of the wrong types with 4xx', async () => {
    const field = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.uuid(),
    );
    const body = fc.record(
      {
        messages: fc.array(
          fc.record({ id: field, payload: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: [] }),
          { maxLength: 5 },
        ),
        consumer: field,
        max: field,
        leaseId: field,
        ids: field,
        delaySeconds: field,
        visibilitySeconds: field,
        waitSeconds: fc.constantFrom(0, -1, 'x', null),
        maxAttempts: field,
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints), body, async ([method, path], payload) => {
        await expectSane(await request(asService(queue.app))[method](path).send(payload));
      }),
      { numRuns: 150 },
    );
  });

  it('answers broken bytes, odd content types, deep nesting and huge strings with 4xx', async () => {
    const cases: [string, string | Buffer][] = [
      ['application/json', Buffer.from([0xff, 0xfe, 0x7b, 0x00])],
      ['application/json', '{"payload": "\\ud800\\udc00\\ud800"}'],
      ['application/json', '['.repeat(5_000) + ']'.repeat(5_000)],
      ['application/json', `{"payload":"${'x'.repeat(300 * 1024)}"}`],
      ['application/json; charset=utf-16', '{"payload":1}'],
      ['application/x-www-form-urlencoded', 'payload=1'],
      ['multipart/form-data; boundary=x', '--x\r\n\r\n1\r\n--x--'],
      ['application/json', ''],
      ['application/json', 'null'],
      ['application/json', '"string"'],
    ];
    for (const [type, body] of cases) {
      for (const [method, path] of endpoints) {
        await expectSane(
          await request(asService(queue.app))[method](path).set('content-type', type).send(body),
        );
      }
    }
    await request(asService(queue.app)).get('/healthz').expect(200);
  });

  it('treats hostile topic names and ids in the path as data', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 80 }), async (name) => {
        const res = await request(asService(queue.app)).get(`/v1/topics/${encodeURIComponent(name)}`);
        expect([200, 400, 404]).toContain(res.status);
      }),
      { numRuns: 200 },
    );
    await request(asService(queue.app)).get("/v1/topics/x';DROP TABLE queue_messages;--").expect(400);
    const { rows } = await queue.database.pool.query(
      "SELECT to_regclass('queue_messages') IS NOT NULL AS present",
    );
    expect(rows[0].present).toBe(true);
  });
});
