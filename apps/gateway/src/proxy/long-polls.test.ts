import { createServer, type ServerResponse } from 'node:http';
import type { Server } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { RunningServer } from '@gpu-telemetry/service-kit';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { listenGatewayTo, serve } from '../testing/gateway-test-app';
import { metric, type RawAnswer, rawRequest } from '../testing/http-probes';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * Queue long-polls (leases that wait for messages) have a budget of their own, apart from the
 * ordinary requests' GATEWAY_MAX_CONCURRENCY, and a share of it per key (or address): one consumer's idle
 * waits lock out neither the other routes nor the other consumers. Against a queue stand-in that
 * holds every lease until told to answer.
 */
const ADMIN = 'bootstrap-admin-key-for-long-polls-0123456789';
let database: TestDatabase<GatewayDatabase>;
let queue: Server;
let queueUrl: string;
/** Leases the queue holds, unanswered. */
let held: ServerResponse[] = [];

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  queue = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'POST' && /^\/v1\/topics\/[^/]+\/leases$/.test(req.url ?? '')) {
        held.push(res);
        res.on('close', () => (held = held.filter((r) => r !== res)));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ topics: [] }));
    });
  });
  queueUrl = await serve(queue);
});

afterAll(async () => {
  queue.closeAllConnections();
  queue.close();
  await database.drop();
});

/** Answers every lease the queue holds, as if messages had come. */
function answerHeld(): void {
  for (const res of held) {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ messages: [] }));
  }
}

const start = (env: Record<string, string>) => listenGatewayTo(database, queueUrl, ADMIN, env);

async function stop(running: { gateway: GatewayApp; server: RunningServer }): Promise<void> {
  answerHeld();
  await running.server.close();
  await running.gateway.close();
}

async function newKey(base: string, scopes: string[]): Promise<string> {
  const res = await request(base)
    .post('/api/v1/keys')
    .set('x-api-key', ADMIN)
    .send({ name: scopes.join('+'), scopes })
    .expect(201);
  return res.body.key as string;
}

/** A lease that waits up to 30 s, on a connection of its own; `abort` leaves before the answer. */
function lease(base: string, key?: string): { answer: Promise<RawAnswer>; abort: () => void } {
  return rawRequest(`${base}/api/v1/topics/jobs/leases`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) },
    body: JSON.stringify({ consumer: 'worker', max: 10, waitSeconds: 30 }),
  });
}

/** Waits until the queue holds `count` leases. */
async function untilHeld(count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (held.length !== count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(held.length).toBe(count);
}

/** The answers that came back by now, leaving the ones still waiting. */
async function settled(answers: Promise<RawAnswer>[]): Promise<RawAnswer[]> {
  const pending = Symbol('pending');
  const now = await Promise.all(
    answers.map((a) => Promise.race([a, new Promise<typeof pending>((r) => setImmediate(() => r(pending)))])),
  );
  return now.filter((a): a is RawAnswer => a !== pending);
}

describe('POST /api/v1/topics/:topic/leases (long-polls)', () => {
  it("takes no slot of other requests', and one key holds at most its share (a quarter by default)", async () => {
    const running = await start({ GATEWAY_MAX_CONCURRENCY: '10' });
    try {
      const [consumer, other, reader] = [
        await newKey(running.base, ['consume']),
        await newKey(running.base, ['consume']),
        await newKey(running.base, ['read']),
      ];
      const polls = Array.from({ length: 10 }, () => lease(running.base, consumer).answer);
      await untilHeld(3);
      // Seven refused at once, the three let through still waiting.
      const deadline = Date.now() + 5_000;
      while ((await settled(polls)).length < 7 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      const refused = await settled(polls);
      expect(refused).toHaveLength(7);
      for (const answer of refused) {
        expect(answer.status).toBe(503);
        expect(answer.headers['content-type']).toContain('application/problem+json');
        expect(answer.headers['retry-after']).toBe('1');
        expect(answer.body).toMatchObject({
          status: 503,
          detail: 'This key has 3 long-polls waiting, its most at once; retry when one returns.',
        });
      }

      // Everyone else is served as before: another key's reads and long-polls.
      await request(running.base).get('/api/v1/topics').set('x-api-key', reader).expect(200);
      const others = lease(running.base, other);
      await untilHeld(4);

      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'long_polls_per_client' })).toBe(
        7,
      );
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency' })).toBe(0);
      expect(await metric(running.base, 'gateway_long_polls_waiting')).toBe(4);
      expect(await metric(running.base, 'gateway_requests_in_flight')).toBe(0);
      expect(running.logs.filter((l) => l.msg === 'long-poll refused')).toHaveLength(7);
      expect(running.logs.find((l) => l.msg === 'long-poll refused')).toMatchObject({
        level: 'warn',
        reason: 'long_polls_per_client',
        holding: 3,
        limit: 3,
      });

      // Answered, the slots are free again.
      answerHeld();
      expect((await Promise.all(polls)).filter((a) => a.status === 200)).toHaveLength(3);
      expect((await others.answer).status).toBe(200);
      expect(await metric(running.base, 'gateway_long_polls_waiting')).toBe(0);
      const again = lease(running.base, consumer);
      await untilHeld(1);
      answerHeld();
      expect((await again.answer).status).toBe(200);
    } finally {
      await stop(running);
    }
  });

  it('refuses past GATEWAY_MAX_LONG_POLLS in all, while ordinary requests still pass; one left frees its slot', async () => {
    const running = await start({
      GATEWAY_MAX_CONCURRENCY: '1',
      GATEWAY_MAX_LONG_POLLS: '4',
      GATEWAY_MAX_LONG_POLLS_PER_CLIENT: '2',
    });
    try {
      const keys = [
        await newKey(running.base, ['consume']),
        await newKey(running.base, ['consume']),
        await newKey(running.base, ['consume', 'read']),
      ] as const;
      const waiting = [keys[0], keys[0], keys[1], keys[1]].map((key) => lease(running.base, key));
      await untilHeld(4);
      const full = await lease(running.base, keys[2]).answer;
      expect(full.status).toBe(503);
      expect(full.headers['retry-after']).toBe('1');
      expect(full.body).toMatchObject({ status: 503, detail: 'Too many long-polls waiting; retry shortly.' });
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'long_polls' })).toBe(1);

      // Four long-polls wait, and the one ordinary slot is still free.
      await request(running.base).get('/api/v1/topics').set('x-api-key', keys[2]).expect(200);

      // A client that leaves gives its slot back.
      waiting[0]?.abort();
      await untilHeld(3);
      const next = lease(running.base, keys[2]);
      await untilHeld(4);
      answerHeld();
      expect((await next.answer).status).toBe(200);
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency' })).toBe(0);
    } finally {
      await stop(running);
    }
  });

  it('gives each client address its share when keys are off', async () => {
    const running = await start({ GATEWAY_AUTH: 'false', GATEWAY_MAX_LONG_POLLS_PER_CLIENT: '2' });
    try {
      const waiting = [lease(running.base), lease(running.base)];
      await untilHeld(2);
      const third = await lease(running.base).answer;
      expect(third.status).toBe(503);
      expect(third.body.detail).toBe(
        'This address has 2 long-polls waiting, its most at once; retry when one returns.',
      );
      answerHeld();
      for (const poll of waiting) expect((await poll.answer).status).toBe(200);
    } finally {
      await stop(running);
    }
  });
});
