import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';

/**
 * Every bad input is a 4xx application/problem+json naming the field, and none of them loses,
 * duplicates or changes a message.
 */
let queue: QueueTestApp;
const topic = 'bad-input';
let leaseId: string;
let heldId: string;

beforeAll(async () => {
  queue = await startQueueTestApp({ QUEUE_BODY_LIMIT: 512 * 1024 });
  await request(asService(queue.app))
    .post(`/v1/topics/${topic}/messages`)
    .send({ messages: [{ payload: 1 }, { payload: 2 }] })
    .expect(201);
  const lease = await request(asService(queue.app))
    .post(`/v1/topics/${topic}/leases`)
    .send({ consumer: 'c', max: 1 })
    .expect(200);
  leaseId = lease.body.leaseId;
  heldId = lease.body.messages[0].id;
});

afterAll(async () => {
  await queue.close();
});

const big = 'x'.repeat(300 * 1024);
const many = Array.from({ length: 1001 }, (_, i) => ({ payload: i }));
const deep = JSON.parse('['.repeat(129) + ']'.repeat(129));

type Case = [
  name: string,
  method: 'post' | 'get' | 'put' | 'delete',
  path: string,
  body: unknown,
  status: number,
  field: string,
];

const cases: Case[] = [
  ['malformed JSON', 'post', `/v1/topics/${topic}/messages`, '{"messages": [', 400, 'body'],
  [
    'a body that is not JSON',
    'post',
    `/v1/topics/${topic}/messages`,
    'text/plain:hello',
    415,
    'content-type',
  ],
  ['an invalid topic name', 'post', '/v1/topics/Bad_Topic!/messages', { payload: 1 }, 400, 'topic'],
  [
    'a topic name that is too long',
    'post',
    `/v1/topics/${'a'.repeat(64)}/messages`,
    { payload: 1 },
    400,
    'topic',
  ],
  ['an empty batch', 'post', `/v1/topics/${topic}/messages`, { messages: [] }, 400, 'messages'],
  ['a batch of 1001', 'post', `/v1/topics/${topic}/messages`, { messages: many }, 400, 'messages'],
  [
    'messages that is not an array',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: 'nope' },
    400,
    'messages',
  ],
  [
    'a message without payload',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ id: randomUUID() }] },
    400,
    'messages[0].payload',
  ],
  [
    'an id that is not a uuid',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ payload: 1 }, { id: '42', payload: 1 }] },
    400,
    'messages[1].id',
  ],
  [
    'an unknown message field',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ payload: 1, paylod: 2 }] },
    400,
    'messages[0].paylod',
  ],
  [
    'an unknown batch field',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ payload: 1 }], priority: 1 },
    400,
    'priority',
  ],
  [
    'a payload over 256 KiB',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ payload: 1 }, { payload: big }] },
    413,
    'messages[1].payload',
  ],
  [
    'a body over the limit',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ payload: big }, { payload: big }] },
    413,
    'body',
  ],
  ['a JSON array body', 'post', `/v1/topics/${topic}/messages`, [1, 2], 400, 'body'],
  [
    'a payload nested 129 deep',
    'post',
    `/v1/topics/${topic}/messages`,
    { messages: [{ payload: 1 }, { payload: deep }] },
    400,
    'messages[1].payload',
  ],
  [
    'an ack body over 64 KiB (2000 ids)',
    'post',
    `/v1/topics/${topic}/acks`,
    { leaseId: randomUUID(), ids: Array.from({ length: 2000 }, () => randomUUID()) },
    413,
    'body',
  ],
  ['a lease without consumer', 'post', `/v1/topics/${topic}/leases`, { max: 1 }, 400, 'consumer'],
  ['max 0', 'post', `/v1/topics/${topic}/leases`, { consumer: 'c', max: 0 }, 400, 'max'],
  ['max over 1000', 'post', `/v1/topics/${topic}/leases`, { consumer: 'c', max: 1001 }, 400, 'max'],
  ['max as a string', 'post', `/v1/topics/${topic}/leases`, { consumer: 'c', max: '10' }, 400, 'max'],
  ['a fractional max', 'post', `/v1/topics/${topic}/leases`, { consumer: 'c', max: 1.5 }, 400, 'max'],
  [
    'a negative wait',
    'post',
    `/v1/topics/${topic}/leases`,
    { consumer: 'c', waitSeconds: -1 },
    400,
    'waitSeconds',
  ],
  [
    'a zero visibility',
    'post',
    `/v1/topics/${topic}/leases`,
    { consumer: 'c', visibilitySeconds: 0 },
    400,
    'visibilitySeconds',
  ],
  [
    'an unknown lease field',
    'post',
    `/v1/topics/${topic}/leases`,
    { consumer: 'c', maxMessages: 5 },
    400,
    'maxMessages',
  ],
  [
    'a NUL character in consumer',
    'post',
    `/v1/topics/${topic}/leases`,
    { consumer: 'c\u0000' },
    400,
    'consumer',
  ],
  ['an ack without leaseId', 'post', `/v1/topics/${topic}/acks`, {}, 400, 'leaseId'],
  ['a leaseId that is not a uuid', 'post', `/v1/topics/${topic}/acks`, { leaseId: 'abc' }, 400, 'leaseId'],
  ['an empty ids list', 'post', `/v1/topics/${topic}/acks`, { leaseId: randomUUID(), ids: [] }, 400, 'ids'],
  [
    'a bad id in ids',
    'post',
    `/v1/topics/${topic}/acks`,
    { leaseId: randomUUID(), ids: ['x'] },
    400,
    'ids[0]',
  ],
  [
    'a negative nack delay',
    'post',
    `/v1/topics/${topic}/nacks`,
    { leaseId: randomUUID(), delaySeconds: -5 },
    400,
    'delaySeconds',
  ],
  [
    'a nack reason that is not text',
    'post',
    `/v1/topics/${topic}/nacks`,
    { leaseId: randomUUID(), reason: 42 },
    400,
    'reason',
  ],
  [
    'a NUL character in a nack reason',
    'post',
    `/v1/topics/${topic}/nacks`,
    { leaseId: randomUUID(), reason: 'bad \u0000 byte' },
    400,
    'reason',
  ],
  [
    'an extend with a bad lease id',
    'post',
    `/v1/topics/${topic}/leases/not-a-uuid/extend`,
    {},
    400,
    'leaseId',
  ],
  [
    'an extend with visibility as text',
    'post',
    `/v1/topics/${topic}/leases/${randomUUID()}/extend`,
    { visibilitySeconds: 'long' },
    400,
    'visibilitySeconds',
  ],
  ['a dead-letter limit of 0', 'get', `/v1/topics/${topic}/dead?limit=0`, undefined, 400, 'limit'],
  ['a made-up cursor', 'get', `/v1/topics/${topic}/dead?cursor=abc`, undefined, 400, 'cursor'],
  [
    'a cursor past bigint',
    'get',
    `/v1/topics/${topic}/dead?cursor=9999999999999999999`,
    undefined,
    400,
    'cursor',
  ],
  ['an unknown query parameter', 'get', `/v1/topics/${topic}/dead?sort=desc`, undefined, 400, 'sort'],
  ['maxAttempts 0', 'put', `/v1/topics/${topic}`, { maxAttempts: 0 }, 400, 'maxAttempts'],
  ['a redrive with bad ids', 'post', `/v1/topics/${topic}/dead/redrive`, { ids: 'all' }, 400, 'ids'],
  ['a topic that is not percent-encoded UTF-8', 'get', '/v1/topics/%ZZ', undefined, 400, 'topic'],
  [
    'a release with a body',
    'post',
    `/v1/topics/${topic}/leases/00000000-0000-4000-8000-000000000001/release`,
    { anything: [1, 2] },
    400,
    'anything',
  ],
  ['a topic cut mid-character', 'post', '/v1/topics/%E0%A4%A/messages', { messages: [] }, 400, 'topic'],
  [
    'a lease id that is not percent-encoded UTF-8',
    'post',
    `/v1/topics/${topic}/leases/%ff/extend`,
    { visibilitySeconds: 10 },
    400,
    'leaseId',
  ],
];

describe('bad input', () => {
  it.each(cases.map((c) => [`${c[0]}: ${c[4]} naming ${c[5]}`, ...c.slice(1)] as Case))(
    '%s',
    async (_name, method, path, body, status, field) => {
      let req = request(asService(queue.app))[method](path);
      if (typeof body === 'string' && body.startsWith('text/plain:')) {
        req = req.set('content-type', 'text/plain').send(body.slice('text/plain:'.length));
      } else if (typeof body === 'string') {
        req = req.set('content-type', 'application/json').send(body);
      } else if (body !== undefined) {
        req = req.send(body as object);
      }
      const res = await req;
      expect(res.status).toBe(status);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    },
  );

  it('leaves the topic exactly as it was: nothing lost, duplicated or settled', async () => {
    const stats = await request(asService(queue.app)).get(`/v1/topics/${topic}`).expect(200);
    expect(stats.body).toMatchObject({ ready: 1, inFlight: 1, dead: 0 });
    const { rows } = await queue.database.pool.query(
      'SELECT count(*)::int AS n, count(DISTINCT msg_uuid)::int AS distinct_ids FROM queue_messages WHERE topic = $1',
      [topic],
    );
    expect(rows[0]).toEqual({ n: 2, distinct_ids: 2 });
    await request(asService(queue.app))
      .post(`/v1/topics/${topic}/acks`)
      .send({ leaseId, ids: [heldId] })
      .expect(200, { acked: 1 });
  });

  it('takes charset=utf8 (no dash) as UTF-8 on every route, as publish takes it', async () => {
    const own = 'charset-utf8';
    const type = 'application/json; charset=UTF8';
    await request(asService(queue.app))
      .post(`/v1/topics/${own}/messages`)
      .set('content-type', type)
      .send('{"payload":{"spelled":"utf8"}}')
      .expect(201);
    const lease = await request(asService(queue.app))
      .post(`/v1/topics/${own}/leases`)
      .set('content-type', type)
      .send('{"consumer":"utf8-test","max":1}')
      .expect(200);
    expect(lease.body.messages.map((m: { payload: unknown }) => m.payload)).toEqual([{ spelled: 'utf8' }]);
    await request(asService(queue.app))
      .post(`/v1/topics/${own}/acks`)
      .set('content-type', 'application/json;charset="utf8"')
      .send(JSON.stringify({ leaseId: lease.body.leaseId }))
      .expect(200, { acked: 1 });
    // Another charset on a JSON route is still refused, naming the header.
    const refused = await request(asService(queue.app))
      .post(`/v1/topics/${own}/acks`)
      .set('content-type', 'application/json; charset=latin1')
      .send(JSON.stringify({ leaseId: lease.body.leaseId }))
      .expect(415);
    expect(refused.body.errors[0].field).toBe('content-type');
  });

  it('answers a publish in a charset other than UTF-8 with 415: payloads are stored as the bytes sent', async () => {
    const res = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/messages`)
      .set('content-type', 'application/json; charset=utf-16le')
      .send(Buffer.from('{"payload":1}', 'utf16le').toString('latin1'))
      .expect(415);
    expect(res.body.errors).toEqual([{ field: 'content-type', message: expect.stringContaining('UTF-8') }]);
  });

  it('answers a compressed publish with 415: it would cost the limit in memory whatever its size', async () => {
    const res = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/messages`)
      .set('content-type', 'application/json')
      .set('content-encoding', 'gzip')
      .send('{"payload":1}')
      .expect(415);
    expect(res.body.errors).toEqual([
      { field: 'content-encoding', message: expect.stringContaining('identity') },
    ]);
  });

  it('words a missing or mistyped field as the rest of the API does', async () => {
    const missing = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/leases`)
      .send({ max: 1 })
      .expect(400);
    expect(missing.headers['content-type']).toContain('application/problem+json');
    expect(missing.body).toMatchObject({
      detail: 'consumer: is required',
      errors: [{ field: 'consumer', message: 'is required' }],
    });
    const mistyped = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/leases`)
      .send({ consumer: 7, max: '10', waitSeconds: 'soon' })
      .expect(400);
    expect(mistyped.body.errors).toEqual([
      { field: 'consumer', message: 'must be a string' },
      { field: 'max', message: 'must be a number' },
      { field: 'waitSeconds', message: 'must be a number' },
    ]);
    const limit = await request(asService(queue.app)).get(`/v1/topics/${topic}/dead?limit=ten`).expect(400);
    expect(limit.body).toMatchObject({
      detail: 'limit: must be a number',
      errors: [{ field: 'limit', message: 'must be a number' }],
    });
    // A message the schema words itself is kept.
    const fraction = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/leases`)
      .send({ consumer: 'c', max: 1.5 })
      .expect(400);
    expect(fraction.body.errors).toEqual([{ field: 'max', message: 'must be a whole number' }]);
  });

  it("lists at most 100 of a body's mistakes, however many it has", async () => {
    const body = Object.fromEntries(Array.from({ length: 3_000 }, (_, i) => [`u${i}`, 0]));
    const res = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/leases`)
      .send({ consumer: 'c', ...body })
      .expect(400);
    expect(res.body.errors).toHaveLength(100);
    expect(res.body.errors[0]).toEqual({ field: 'u0', message: 'is not a known field' });
    expect(res.text.length).toBeLessThan(10_000);
  });

  it('matches paths as the document writes them: in another case they are not found', async () => {
    for (const [method, path] of [
      ['get', '/V1/TOPICS'],
      ['post', '/V1/Topics/case-topic/MESSAGES'],
      ['get', `/v1/topics/${topic}/MESSAGES`],
    ] as const) {
      const res = await request(asService(queue.app))
        [method](path)
        .send({ messages: [{ payload: 1 }] });
      expect(res.status).toBe(404);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    await request(asService(queue.app)).get('/v1/topics/case-topic').expect(404); // nothing was stored
  });

  it('names the body when it is not the gzip its Content-Encoding says', async () => {
    const res = await request(asService(queue.app))
      .post(`/v1/topics/${topic}/leases`)
      .set('content-type', 'application/json')
      .set('content-encoding', 'gzip')
      .send('not gzip at all')
      .expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors).toEqual([{ field: 'body', message: 'is not valid gzip data' }]);
  });

  it('answers an unknown route with 404 problem+json', async () => {
    const res = await request(asService(queue.app)).get('/v1/nothing-here').expect(404);
    expect(res.headers['content-type']).toContain('application/problem+json');
  });
});
