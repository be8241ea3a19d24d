import { randomUUID } from 'node:crypto';
import { waitFor } from '@gpu-telemetry/harness';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { startQueueTestApp, type QueueTestApp } from '../testing/queue-test-app';

let queue: QueueTestApp;

beforeAll(async () => {
  queue = await startQueueTestApp();
});

afterAll(async () => {
  await queue.close();
});

const api = () => request(asService(queue.app));
const topicName = () => `t-${randomUUID().slice(0, 8)}`;
const uuidFor = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;

async function publish(topic: string, messages: { id?: string; payload: unknown }[]) {
  const res = await api().post(`/v1/topics/${topic}/messages`).send({ messages }).expect(201);
  return res.body as { accepted: number; duplicates: number; ids: string[] };
}

async function lease(topic: string, body: Record<string, unknown> = {}) {
  const res = await api()
    .post(`/v1/topics/${topic}/leases`)
    .send({ consumer: 'test', max: 10, visibilitySeconds: 30, ...body })
    .expect(200);
  return res.body as {
    leaseId: string | null;
    leaseUntil: string | null;
    messages: { id: string; payload: unknown; attempts: number; publishedAt: string }[];
  };
}

async function stats(topic: string) {
  return (await api().get(`/v1/topics/${topic}`).expect(200)).body;
}

describe('POST /v1/topics/:topic/messages', () => {
  it('stores a batch and answers 201 with accepted, duplicates and ids in request order', async () => {
    const topic = topicName();
    const given = randomUUID();
    const res = await api()
      .post(`/v1/topics/${topic}/messages`)
      .send({ messages: [{ payload: { gpu: 0 } }, { id: given, payload: [1, 2] }, { payload: 'text' }] })
      .expect(201);
    expect(res.body.accepted).toBe(3);
    expect(res.body.duplicates).toBe(0);
    expect(res.body.ids).toHaveLength(3);
    expect(res.body.ids[1]).toBe(given);
    expect((await stats(topic)).ready).toBe(3);
  });

  it('makes up time-ordered (version 7) ids for messages sent without one', async () => {
    const topic = topicName();
    const first = await publish(topic, [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
    const second = await publish(topic, [{ payload: 4 }]);
    const ids = [...first.ids, ...second.ids];
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect([...ids].sort()).toEqual(ids);
    const leased = await lease(topic, { max: 4 });
    expect(leased.messages.map((m) => m.id)).toEqual(ids);
  });

  it('accepts a single message without the batch wrapper', async () => {
    const topic = topicName();
    const res = await api()
      .post(`/v1/topics/${topic}/messages`)
      .send({ payload: { one: true } })
      .expect(201);
    expect(res.body).toMatchObject({ accepted: 1, duplicates: 0 });
    const leased = await lease(topic);
    expect(leased.messages.map((m) => m.payload)).toEqual([{ one: true }]);
  });

  it('delivers each payload byte for byte as it was published, whatever JSON.parse would make of it', async () => {
    const topic = topicName();
    const payloads = [
      '{ "big": 12345678901234567890, "exact": 1.10, "exp": 1E+2 }',
      '{"z":1,"a":[ {"}":"{"} ],"esc":"quote \\" and \\\\ and \\u00e9 é 😀"}',
      '"a\\u0000b"',
      '{"lone":"\\ud800"}',
      '[]',
      'null',
    ];
    const body = `{ "messages" : [ ${payloads.map((p, i) => `{"pay\\u006coad":0, "payload" :${p}, "id":"${uuidFor(i)}"}`).join(' , ')} ] }`;
    const res = await api()
      .post(`/v1/topics/${topic}/messages`)
      .set('content-type', 'application/json')
      .send(body)
      .expect(201);
    expect(res.body).toMatchObject({ accepted: payloads.length, duplicates: 0 });
    const leased = await api()
      .post(`/v1/topics/${topic}/leases`)
      .send({ consumer: 'test', max: 10 })
      .buffer(true)
      .parse((response, done) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        response.on('end', () => done(null, text));
      })
      .expect(200);
    const raw = leased.body as string;
    for (const [i, payload] of payloads.entries())
      expect(raw).toContain(`{"id":"${uuidFor(i)}","payload":${payload},"attempts":1,`);
  });

  it('stores a repeated id once and counts it as a duplicate, within a batch and across batches', async () => {
    const topic = topicName();
    const id = randomUUID();
    const first = await publish(topic, [
      { id, payload: 1 },
      { id, payload: 2 },
    ]);
    expect(first).toMatchObject({ accepted: 1, duplicates: 1, ids: [id, id] });
    const again = await publish(topic, [{ id, payload: 3 }, { payload: 4 }]);
    expect(again).toMatchObject({ accepted: 1, duplicates: 1 });
    const leased = await lease(topic);
    expect(leased.messages.map((m) => m.payload)).toEqual([1, 4]);
  });

  it('treats ids case-insensitively, as Postgres does', async () => {
    const topic = topicName();
    const id = randomUUID();
    await publish(topic, [{ id: id.toUpperCase(), payload: 1 }]);
    expect(await publish(topic, [{ id, payload: 1 }])).toMatchObject({
      accepted: 0,
      duplicates: 1,
      ids: [id],
    });
  });

  it('round-trips every kind of JSON payload unchanged', async () => {
    const topic = topicName();
    const payloads = [
      null,
      0,
      -1.5e-7,
      'ünïcødé "quoted" \\ back',
      true,
      [],
      {},
      { nested: { deep: [1, { a: null }] } },
    ];
    await publish(
      topic,
      payloads.map((payload) => ({ payload })),
    );
    const leased = await lease(topic, { max: 20 });
    expect(leased.messages.map((m) => m.payload)).toEqual(payloads);
  });
});

describe('POST /v1/topics/:topic/leases', () => {
  it('delivers oldest first, never hands a leased message to another consumer, and counts attempts', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 'a' }]);
    await publish(topic, [{ payload: 'b' }, { payload: 'c' }]);
    const first = await lease(topic, { max: 2 });
    expect(first.messages.map((m) => m.payload)).toEqual(['a', 'b']);
    expect(first.messages.every((m) => m.attempts === 1)).toBe(true);
    const second = await lease(topic, { max: 10 });
    expect(second.messages.map((m) => m.payload)).toEqual(['c']);
    expect(second.leaseId).not.toBe(first.leaseId);
    expect(await stats(topic)).toMatchObject({ ready: 0, inFlight: 3, dead: 0 });
  });

  it('gives each message the time its publish committed, as ISO 8601 UTC to the millisecond', async () => {
    const topic = topicName();
    const first = await publish(topic, [{ payload: 1 }, { payload: 2 }]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = await publish(topic, [{ payload: 3 }]);
    const { messages } = await lease(topic, { max: 3 });
    const { rows } = await queue.database.pool.query<{ id: string; at: string }>(
      `SELECT msg_uuid::text AS id, to_char(published_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at
       FROM queue_messages WHERE topic = $1`,
      [topic],
    );
    const stored = new Map(rows.map((row) => [row.id, row.at]));
    expect(messages.map((m) => [m.id, m.publishedAt])).toEqual(
      [...first.ids, ...second.ids].map((id) => [id, stored.get(id)]),
    );
    expect(messages[0]?.publishedAt).toBe(messages[1]?.publishedAt);
    expect(Date.parse(messages[2]?.publishedAt ?? '')).toBeGreaterThan(
      Date.parse(messages[0]?.publishedAt ?? ''),
    );
  });

  it('answers without an ETag: a lease is never revalidated, so its body is not hashed', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 'a' }]);
    const res = await api().post(`/v1/topics/${topic}/leases`).send({ consumer: 'test', max: 1 }).expect(200);
    expect(res.body.messages).toHaveLength(1);
    expect(res.headers['etag']).toBeUndefined();
    expect(res.body.leaseId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
  });

  it('returns an empty lease with a null leaseId when nothing is ready', async () => {
    const res = await lease(topicName(), { waitSeconds: 0 });
    expect(res).toEqual({ leaseId: null, leaseUntil: null, messages: [] });
  });

  it('makes an expired lease leasable again without any sweeper, and counts the redelivery', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 'x' }]);
    const first = await lease(topic, { visibilitySeconds: 1 });
    expect((await lease(topic)).messages).toHaveLength(0);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const second = await lease(topic);
    expect(second.messages).toHaveLength(1);
    expect(second.messages[0]).toMatchObject({ id: first.messages[0]?.id, attempts: 2 });
    const metrics = (await api().get('/metrics').expect(200)).text;
    expect(metrics).toMatch(new RegExp(`queue_messages_redelivered_total\\{[^}]*topic="${topic}"[^}]*\\} 1`));
  });

  it('long-polls: a publish wakes the waiting lease within milliseconds, not on a polling tick', async () => {
    const slow = await startQueueTestApp({ QUEUE_FALLBACK_POLL: 60_000 }, queue.database);
    try {
      const topic = topicName();
      const started = Date.now();
      const waiting = request(asService(slow.app))
        .post(`/v1/topics/${topic}/leases`)
        .send({ consumer: 'waiter', max: 5, waitSeconds: 20 })
        .then((res) => ({ res, at: Date.now() }));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const publishedAt = Date.now();
      await request(asService(slow.app))
        .post(`/v1/topics/${topic}/messages`)
        .send({ payload: 'wake' })
        .expect(201);
      const { res, at } = await waiting;
      expect(res.status).toBe(200);
      expect(res.body.messages.map((m: { payload: unknown }) => m.payload)).toEqual(['wake']);
      expect(at - started).toBeGreaterThanOrEqual(300);
      expect(at - publishedAt).toBeLessThan(500);
    } finally {
      await slow.stop();
    }
  });

  it('long-polls across replicas: a publish on one wakes a lease waiting on another (LISTEN/NOTIFY)', async () => {
    const a = await startQueueTestApp({ QUEUE_FALLBACK_POLL: 60_000 }, queue.database);
    const b = await startQueueTestApp({ QUEUE_FALLBACK_POLL: 60_000 }, queue.database);
    try {
      await waitFor('both replicas listening', () => a.notifier.listening && b.notifier.listening, {
        timeoutMs: 5_000,
        intervalMs: 20,
      });
      const topic = topicName();
      const waiting = request(asService(a.app))
        .post(`/v1/topics/${topic}/leases`)
        .send({ consumer: 'a', waitSeconds: 20 })
        .then((res) => ({ res, at: Date.now() }));
      await new Promise((resolve) => setTimeout(resolve, 300));
      const publishedAt = Date.now();
      await request(asService(b.app))
        .post(`/v1/topics/${topic}/messages`)
        .send({ payload: 'from b' })
        .expect(201);
      const { res, at } = await waiting;
      expect(res.body.messages.map((m: { payload: unknown }) => m.payload)).toEqual(['from b']);
      expect(at - publishedAt).toBeLessThan(1_000);
      const metrics = await request(asService(a.app)).get('/metrics').expect(200);
      expect(metrics.text).toMatch(/^queue_listening(\{[^}]*\})? 1$/m);
      expect(metrics.text).toMatch(/^queue_notify_failures_total(\{[^}]*\})? 0$/m);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it('returns an empty list when waitSeconds runs out', async () => {
    const started = Date.now();
    const res = await lease(topicName(), { waitSeconds: 0.5 });
    expect(res.messages).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
  });

  it('wakes when a nacked message’s delay ends, without a publish', async () => {
    const slow = await startQueueTestApp({ QUEUE_FALLBACK_POLL: 60_000 }, queue.database);
    try {
      const topic = topicName();
      await request(asService(slow.app))
        .post(`/v1/topics/${topic}/messages`)
        .send({ payload: 'later' })
        .expect(201);
      const first = (
        await request(asService(slow.app)).post(`/v1/topics/${topic}/leases`).send({ consumer: 'c' })
      ).body;
      await request(asService(slow.app))
        .post(`/v1/topics/${topic}/nacks`)
        .send({ leaseId: first.leaseId, delaySeconds: 1 })
        .expect(200);
      const started = Date.now();
      const res = await request(asService(slow.app))
        .post(`/v1/topics/${topic}/leases`)
        .send({ consumer: 'c', waitSeconds: 10 });
      expect(res.body.messages).toHaveLength(1);
      expect(Date.now() - started).toBeLessThan(2_500);
    } finally {
      await slow.stop();
    }
  });

  it('wakes a lease already waiting when a message nacked with a delay becomes visible', async () => {
    const slow = await startQueueTestApp({ QUEUE_FALLBACK_POLL: 60_000 }, queue.database);
    try {
      const topic = topicName();
      const slowApi = () => request(asService(slow.app));
      await slowApi().post(`/v1/topics/${topic}/messages`).send({ payload: 'retry me' }).expect(201);
      const held = (
        await slowApi()
          .post(`/v1/topics/${topic}/leases`)
          .send({ consumer: 'a', visibilitySeconds: 30 })
          .expect(200)
      ).body;
      // The only message is in flight for 30 s: the waiter sleeps until then, or until woken.
      const waiting = slowApi()
        .post(`/v1/topics/${topic}/leases`)
        .send({ consumer: 'b', waitSeconds: 20 })
        .then((res) => ({ res, at: Date.now() }));
      await waitFor('the lease to wait', () => slow.waiters.waiting === 1, {
        timeoutMs: 5_000,
        intervalMs: 10,
      });
      const nackedAt = Date.now();
      await slowApi()
        .post(`/v1/topics/${topic}/nacks`)
        .send({ leaseId: held.leaseId, delaySeconds: 1 })
        .expect(200, { nacked: 1, dead: 0 });
      const { res, at } = await waiting;
      expect(res.body.messages.map((m: { payload: unknown }) => m.payload)).toEqual(['retry me']);
      expect(at - nackedAt).toBeGreaterThanOrEqual(900);
      expect(at - nackedAt).toBeLessThan(1_500);
    } finally {
      await slow.stop();
    }
  });

  it('answers the leaseUntil its lease row holds in Postgres, as extend does', async () => {
    const topic = topicName();
    await publish(
      topic,
      Array.from({ length: 300 }, (_, n) => ({ payload: { n } })),
    );
    const leased = await lease(topic, { max: 300, visibilitySeconds: 60 });
    const held = async () =>
      (
        await queue.database.pool.query<{ until: string }>(
          `SELECT to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS until
           FROM queue_leases WHERE lease_id = $1`,
          [leased.leaseId],
        )
      ).rows[0]?.until;
    expect(leased.messages).toHaveLength(300);
    expect(leased.leaseUntil).toBe(await held());
    const extended = await api()
      .post(`/v1/topics/${topic}/leases/${leased.leaseId}/extend`)
      .send({ visibilitySeconds: 60 })
      .expect(200);
    expect(extended.body.leaseUntil).toBe(await held());
  });
});

describe('QUEUE_RESPONSE_LIMIT', () => {
  const KB = 1024;
  /** About 200 KB of JSON each: five fit in 1 MiB, six do not. */
  const large = (n: number) => ({ payload: { n, pad: 'x'.repeat(200_000) } });
  let limited: QueueTestApp;

  beforeAll(async () => {
    limited = await startQueueTestApp({ QUEUE_RESPONSE_LIMIT: 1024 * KB }, queue.database);
  });

  afterAll(async () => {
    await limited.stop();
  });

  const limitedApi = () => request(asService(limited.app));
  const numbers = (messages: { payload: { n: number } }[]) => messages.map((m) => m.payload.n);

  it('stops a lease where its payloads would pass the limit; the rest stay ready for the next', async () => {
    const topic = topicName();
    const { ids } = await publish(
      topic,
      Array.from({ length: 8 }, (_, n) => large(n)),
    );
    const leaseAll = async () =>
      (await limitedApi().post(`/v1/topics/${topic}/leases`).send({ consumer: 'c', max: 1000 }).expect(200))
        .body;
    const first = await leaseAll();
    expect(numbers(first.messages)).toEqual([0, 1, 2, 3, 4]);
    expect(await stats(topic)).toMatchObject({ ready: 3, inFlight: 5 });
    const second = await leaseAll();
    expect(numbers(second.messages)).toEqual([5, 6, 7]);
    expect(second.messages.every((m: { attempts: number }) => m.attempts === 1)).toBe(true);
    expect((await leaseAll()).messages).toEqual([]);
    const delivered = [...first.messages, ...second.messages].map((m: { id: string }) => m.id);
    expect(delivered).toEqual(ids);
    await limitedApi()
      .post(`/v1/topics/${topic}/acks`)
      .send({ leaseId: first.leaseId })
      .expect(200, { acked: 5 });
    await limitedApi()
      .post(`/v1/topics/${topic}/acks`)
      .send({ leaseId: second.leaseId })
      .expect(200, { acked: 3 });
  });

  it('always leases one message, even one larger than the limit', async () => {
    const small = await startQueueTestApp({ QUEUE_RESPONSE_LIMIT: 1 }, queue.database);
    try {
      const topic = topicName();
      await publish(topic, [{ payload: 'a' }, { payload: 'b' }]);
      const leaseAll = async () =>
        (
          await request(asService(small.app))
            .post(`/v1/topics/${topic}/leases`)
            .send({ consumer: 'c', max: 10 })
            .expect(200)
        ).body.messages.map((m: { payload: unknown }) => m.payload);
      expect(await leaseAll()).toEqual(['a']);
      expect(await leaseAll()).toEqual(['b']);
    } finally {
      await small.stop();
    }
  });

  it('cuts a dead-letter page where its payloads would pass the limit, with a cursor to the rest', async () => {
    const topic = topicName();
    await api().put(`/v1/topics/${topic}`).send({ maxAttempts: 1 }).expect(200);
    await publish(
      topic,
      Array.from({ length: 8 }, (_, n) => large(n)),
    );
    const { leaseId } = await lease(topic, { max: 8 });
    await api()
      .post(`/v1/topics/${topic}/nacks`)
      .send({ leaseId, deadLetter: true, reason: 'too big to bear' })
      .expect(200, { nacked: 8, dead: 8 });
    const page1 = (await limitedApi().get(`/v1/topics/${topic}/dead?limit=1000`).expect(200)).body;
    expect(numbers(page1.messages)).toEqual([0, 1, 2, 3, 4]);
    expect(page1.nextCursor).toEqual(expect.any(String));
    const page2 = (
      await limitedApi().get(`/v1/topics/${topic}/dead?limit=1000&cursor=${page1.nextCursor}`).expect(200)
    ).body;
    expect(numbers(page2.messages)).toEqual([5, 6, 7]);
    expect(page2.nextCursor).toBeNull();
  });
});

describe('POST /v1/topics/:topic/acks', () => {
  it('acks a whole lease and deletes its messages', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }, { payload: 2 }]);
    const { leaseId } = await lease(topic);
    expect((await api().post(`/v1/topics/${topic}/acks`).send({ leaseId }).expect(200)).body).toEqual({
      acked: 2,
    });
    expect(await stats(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 0 });
    const rows = await queue.database.pool.query(
      'SELECT count(*)::int AS n FROM queue_messages WHERE topic = $1',
      [topic],
    );
    expect(rows.rows[0].n).toBe(0);
  });

  it('acks only the named ids and leaves the rest of the lease in flight', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }, { payload: 2 }]);
    const { leaseId, messages } = await lease(topic);
    await api()
      .post(`/v1/topics/${topic}/acks`)
      .send({ leaseId, ids: [messages[0]?.id] })
      .expect(200, { acked: 1 });
    expect(await stats(topic)).toMatchObject({ inFlight: 1 });
  });

  it('returns 409 and changes nothing when the lease expired and the message was re-leased', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 'x' }]);
    const stale = await lease(topic, { visibilitySeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const fresh = await lease(topic);
    const res = await api().post(`/v1/topics/${topic}/acks`).send({ leaseId: stale.leaseId }).expect(409);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.detail).toContain(stale.leaseId);
    expect(await stats(topic)).toMatchObject({ inFlight: 1 });
    await api().post(`/v1/topics/${topic}/acks`).send({ leaseId: fresh.leaseId }).expect(200, { acked: 1 });
  });

  it('still accepts a late ack when the expired lease was not re-leased', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 'x' }]);
    const late = await lease(topic, { visibilitySeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await api().post(`/v1/topics/${topic}/acks`).send({ leaseId: late.leaseId }).expect(200, { acked: 1 });
  });

  it('is all or nothing: one id not held means 409 naming it, and nothing is acked', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }]);
    const { leaseId, messages } = await lease(topic);
    const stranger = randomUUID();
    const res = await api()
      .post(`/v1/topics/${topic}/acks`)
      .send({ leaseId, ids: [messages[0]?.id, stranger] })
      .expect(409);
    expect(res.body.notHeld).toEqual([stranger]);
    expect(await stats(topic)).toMatchObject({ inFlight: 1 });
  });

  it('returns 409 for an ack repeated after success', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }]);
    const { leaseId } = await lease(topic);
    await api().post(`/v1/topics/${topic}/acks`).send({ leaseId }).expect(200);
    await api().post(`/v1/topics/${topic}/acks`).send({ leaseId }).expect(409);
  });
});

describe('POST /v1/topics/:topic/nacks and dead letters', () => {
  it('returns a message after its delay, with the reason kept, and dead-letters it after maxAttempts', async () => {
    const topic = topicName();
    await api().put(`/v1/topics/${topic}`).send({ maxAttempts: 2 }).expect(200);
    const { ids } = await publish(topic, [{ payload: { poison: true } }]);
    const first = await lease(topic);
    expect(
      (
        await api()
          .post(`/v1/topics/${topic}/nacks`)
          .send({ leaseId: first.leaseId, reason: 'bad gpuId' })
          .expect(200)
      ).body,
    ).toEqual({ nacked: 1, dead: 0 });
    const second = await lease(topic);
    expect(second.messages[0]).toMatchObject({ id: ids[0], attempts: 2 });
    expect(
      (
        await api()
          .post(`/v1/topics/${topic}/nacks`)
          .send({ leaseId: second.leaseId, reason: 'still bad' })
          .expect(200)
      ).body,
    ).toEqual({ nacked: 1, dead: 1 });
    expect((await lease(topic)).messages).toHaveLength(0);
    expect(await stats(topic)).toMatchObject({ ready: 0, inFlight: 0, dead: 1, maxAttempts: 2 });

    const dead = (await api().get(`/v1/topics/${topic}/dead`).expect(200)).body;
    expect(dead.messages).toEqual([
      expect.objectContaining({ id: ids[0], payload: { poison: true }, attempts: 2, lastError: 'still bad' }),
    ]);
    expect(dead.nextCursor).toBeNull();

    expect((await api().post(`/v1/topics/${topic}/dead/redrive`).send({}).expect(200)).body).toEqual({
      redriven: 1,
    });
    const again = await lease(topic);
    expect(again.messages[0]).toMatchObject({ id: ids[0], attempts: 1, payload: { poison: true } });
    expect(await stats(topic)).toMatchObject({ dead: 0, inFlight: 1 });
  });

  it('dead-letters a message whose leases keep expiring (a consumer that crashes on it)', async () => {
    const topic = topicName();
    await api().put(`/v1/topics/${topic}`).send({ maxAttempts: 1 }).expect(200);
    await publish(topic, [{ payload: 'crasher' }]);
    await lease(topic, { visibilitySeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await lease(topic)).messages).toEqual([]);
    const dead = (await api().get(`/v1/topics/${topic}/dead`).expect(200)).body;
    expect(dead.messages[0].lastError).toMatch(/lease expired without ack after 1 deliveries/);
  });

  it('pages dead letters with a cursor and redrives or purges chosen ids', async () => {
    const topic = topicName();
    await api().put(`/v1/topics/${topic}`).send({ maxAttempts: 1 }).expect(200);
    await publish(
      topic,
      [1, 2, 3].map((payload) => ({ payload })),
    );
    const { leaseId } = await lease(topic);
    await api()
      .post(`/v1/topics/${topic}/nacks`)
      .send({ leaseId, reason: 'no' })
      .expect(200, { nacked: 3, dead: 3 });
    const page1 = (await api().get(`/v1/topics/${topic}/dead?limit=2`).expect(200)).body;
    expect(page1.messages.map((m: { payload: number }) => m.payload)).toEqual([1, 2]);
    const page2 = (await api().get(`/v1/topics/${topic}/dead?limit=2&cursor=${page1.nextCursor}`).expect(200))
      .body;
    expect(page2.messages.map((m: { payload: number }) => m.payload)).toEqual([3]);
    expect(page2.nextCursor).toBeNull();

    await api()
      .post(`/v1/topics/${topic}/dead/redrive`)
      .send({ ids: [page1.messages[0].id] })
      .expect(200, { redriven: 1 });
    await api()
      .delete(`/v1/topics/${topic}/dead`)
      .send({ ids: [page1.messages[1].id] })
      .expect(200, { deleted: 1 });
    expect(await stats(topic)).toMatchObject({ ready: 1, dead: 1 });
    const metrics = (await api().get('/metrics').expect(200)).text;
    expect(metrics).toContain(`queue_messages_redriven_total{topic="${topic}",service="queue"} 1`);
    expect(metrics).toContain(`queue_messages_purged_total{topic="${topic}",service="queue"} 1`);
  });
});

describe('POST /v1/topics/:topic/leases/:leaseId/extend and release', () => {
  it('pushes leaseUntil forward so the message is not redelivered', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }]);
    const { leaseId } = await lease(topic, { visibilitySeconds: 1 });
    const res = await api()
      .post(`/v1/topics/${topic}/leases/${leaseId}/extend`)
      .send({ visibilitySeconds: 60 })
      .expect(200);
    expect(new Date(res.body.leaseUntil).getTime()).toBeGreaterThan(Date.now() + 50_000);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect((await lease(topic)).messages).toHaveLength(0);
  });

  it('returns 409 when extending a lease that is no longer held', async () => {
    const topic = topicName();
    await api().post(`/v1/topics/${topic}/leases/${randomUUID()}/extend`).send({}).expect(409);
  });

  it('gives released messages back at once without counting the attempt', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }]);
    const { leaseId } = await lease(topic);
    expect((await api().post(`/v1/topics/${topic}/leases/${leaseId}/release`).expect(200)).body).toEqual({
      released: 1,
    });
    const again = await lease(topic);
    expect(again.messages[0]?.attempts).toBe(1);
    const metrics = (await api().get('/metrics').expect(200)).text;
    expect(metrics).toContain(`queue_messages_released_total{topic="${topic}",service="queue"} 1`);
    // A release of a lease on a made-up topic releases nothing and adds no series.
    await api()
      .post(`/v1/topics/made-up-${topic}/leases/${randomUUID()}/release`)
      .expect(200, { released: 0 });
    expect((await api().get('/metrics').expect(200)).text).not.toContain(`made-up-${topic}`);
  });
});

describe('GET /v1/topics', () => {
  it('lists topics with depth by state, oldest ready age and settings', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }, { payload: 2 }, { payload: 3 }]);
    const { leaseId, messages } = await lease(topic, { max: 2 });
    await api()
      .post(`/v1/topics/${topic}/nacks`)
      .send({ leaseId, ids: [messages[0]?.id], delaySeconds: 600 })
      .expect(200);
    const res = await api().get('/v1/topics').expect(200);
    const mine = res.body.topics.find((t: { topic: string }) => t.topic === topic);
    expect(mine).toMatchObject({ topic, ready: 1, inFlight: 1, delayed: 1, dead: 0, maxAttempts: 5 });
    expect(mine.oldestReadyAgeSeconds).toBeGreaterThanOrEqual(0);
  });

  it('returns 404 problem+json for a topic never published to', async () => {
    const res = await api().get('/v1/topics/never-seen').expect(404);
    expect(res.headers['content-type']).toContain('application/problem+json');
  });

  it('exports queue counters and depth on /metrics', async () => {
    const topic = topicName();
    await publish(topic, [{ payload: 1 }, { payload: 2 }]);
    const { leaseId } = await lease(topic, { max: 1 });
    await api().post(`/v1/topics/${topic}/acks`).send({ leaseId }).expect(200);
    await publish(topic, [{ id: randomUUID(), payload: 3 }]);
    const text = (await api().get('/metrics').expect(200)).text;
    const value = (name: string, extra = '') =>
      Number(new RegExp(`^${name}\\{[^}]*topic="${topic}"${extra}[^}]*\\} (\\d+)`, 'm').exec(text)?.[1]);
    expect(value('queue_messages_published_total')).toBe(3);
    expect(value('queue_messages_leased_total')).toBe(1);
    expect(value('queue_messages_acked_total')).toBe(1);
    expect(value('queue_depth', ',state="ready"')).toBe(2);
    // One batch of ids the queue made up, one with a client id (which needs the dedup insert).
    expect(value('queue_publish_insert_paths_total', ',path="new"')).toBe(1);
    expect(value('queue_publish_insert_paths_total', ',path="dedup"')).toBe(1);
    expect(text).toContain('queue_lease_wait_seconds_bucket');
  });
});

describe('made-up topic names', () => {
  it('leave no series in /metrics and no waiters behind, while real topics keep theirs', async () => {
    const names = Array.from({ length: 40 }, () => `made-up-${randomUUID().slice(0, 8)}`);
    await Promise.all(names.map((name) => lease(name, { waitSeconds: 0.05 })));
    await Promise.all(
      names.flatMap((name) => [
        api().post(`/v1/topics/${name}/acks`).send({ leaseId: randomUUID() }).expect(409),
        api().post(`/v1/topics/${name}/nacks`).send({ leaseId: randomUUID() }).expect(409),
        api().post(`/v1/topics/${name}/leases/${randomUUID()}/extend`).send({}).expect(409),
      ]),
    );
    // Published through another replica: this one learns from Postgres that the topic exists.
    const real = topicName();
    const other = await startQueueTestApp({}, queue.database);
    await request(asService(other.app)).post(`/v1/topics/${real}/messages`).send({ payload: 1 }).expect(201);
    await other.stop();
    await lease(real, { waitSeconds: 0.05 });
    await lease(real, { waitSeconds: 0.05 });
    await api().post(`/v1/topics/${real}/acks`).send({ leaseId: randomUUID() }).expect(409);

    const text = (await api().get('/metrics').expect(200)).text;
    for (const name of names) expect(text).not.toContain(name);
    expect(text).toMatch(
      new RegExp(`^queue_lease_wait_seconds_count\\{[^}]*topic="${real}",outcome="empty"[^}]*\\} 1$`, 'm'),
    );
    expect(text).toMatch(
      new RegExp(`^queue_lease_conflicts_total\\{[^}]*topic="${real}",operation="ack"[^}]*\\} 1$`, 'm'),
    );
    expect(queue.waiters.waiting).toBe(0);
    expect(queue.waiters.topicsWaitedOn).toBe(0);
  });
});

describe('shutdown', () => {
  it('answers waiting long-polls with an empty lease at once, so the server can drain', async () => {
    const local = await startQueueTestApp({}, queue.database);
    const started = Date.now();
    const waiting = request(asService(local.app))
      .post(`/v1/topics/${topicName()}/leases`)
      .send({ consumer: 'c', waitSeconds: 30 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await local.stop();
    const res = await waiting;
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ leaseId: null, leaseUntil: null, messages: [] });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('QUEUE_MAX_TOPICS', () => {
  it('creates a topic that another publisher is creating at the same moment (201, not 409)', async () => {
    const app = await startQueueTestApp({ QUEUE_MAX_TOPICS: 3 });
    const other = await app.database.pool.connect();
    try {
      // Another replica's first publish to the topic, its transaction not yet committed.
      await other.query(`BEGIN; INSERT INTO queue_topics (topic) VALUES ('jobs.raced')`);
      const done = request(asService(app.app))
        .post('/v1/topics/jobs.raced/messages')
        .send({ payload: 1 })
        .then((res) => res);
      await waitFor('the publish to wait for the other creation', async () => {
        const { rows } = await app.database.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        return (rows[0]?.n ?? 0) > 0;
      });
      await other.query('COMMIT');
      expect((await done).status).toBe(201);
      const listed = await request(asService(app.app)).get('/v1/topics').expect(200);
      expect(listed.body.topics.map((t: { topic: string }) => t.topic)).toEqual(['jobs.raced']);
    } finally {
      other.release();
      await app.close();
    }
  });

  it('refuses a new topic past it with 409 naming the topic, on any replica, and keeps serving the ones there are', async () => {
    const a = await startQueueTestApp({ QUEUE_MAX_TOPICS: 3 });
    const b = await startQueueTestApp({ QUEUE_MAX_TOPICS: 3 }, a.database);
    try {
      const publish = (app: QueueTestApp, topic: string) =>
        request(asService(app.app)).post(`/v1/topics/${topic}/messages`).send({ payload: topic });
      for (const topic of ['jobs.a', 'jobs.b']) await publish(a, topic).expect(201);
      await request(asService(a.app)).put('/v1/topics/jobs.c').send({ maxAttempts: 3 }).expect(200);
      for (const [app, topic] of [
        [a, 'jobs.d'],
        [b, 'jobs.e'],
      ] as const) {
        const refused = await publish(app, topic).expect(409);
        expect(refused.headers['content-type']).toContain('application/problem+json');
        expect(refused.body.errors).toEqual([
          { field: 'topic', message: expect.stringContaining('3 topics') },
        ]);
      }
      await request(asService(b.app)).put('/v1/topics/jobs.f').send({ maxAttempts: 3 }).expect(409);
      await publish(b, 'jobs.a').expect(201);
      const listed = await request(asService(b.app)).get('/v1/topics').expect(200);
      expect(listed.body.topics.map((t: { topic: string }) => t.topic).sort()).toEqual([
        'jobs.a',
        'jobs.b',
        'jobs.c',
      ]);
      const lease = await request(asService(b.app))
        .post('/v1/topics/jobs.a/leases')
        .send({ consumer: 'c', max: 10 });
      expect(lease.body.messages.map((m: { payload: unknown }) => m.payload)).toEqual(['jobs.a', 'jobs.a']);
    } finally {
      await b.stop();
      await a.close();
    }
  });
});
