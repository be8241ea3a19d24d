import { type ClientRequest, createServer, request as httpRequest, type Server } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { RunningServer } from '@gpu-telemetry/service-kit';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { listenGatewayTo, serve } from '../testing/gateway-test-app';
import { metric, type RawAnswer, rawRequest } from '../testing/http-probes';
import type { GatewayDatabase } from '../gateway.tables';
import { SlotBudget } from './slot-budget';

/**
 * The requests in flight (GATEWAY_MAX_CONCURRENCY) have a share per key, or per address group when
 * anonymous (GATEWAY_MAX_CONCURRENCY_PER_CLIENT): one client sending bodies slowly holds its
 * share of the slots, never all of them, and everyone else is served. Through the production
 * server, against an upstream that answers each request once its body has come.
 */
const ADMIN = 'bootstrap-admin-key-for-concurrency-0123456789';
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let upstreamUrl: string;
/** Requests whose headers reached the upstream and whose body has not ended. */
let receiving = 0;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  upstream = createServer((req, res) => {
    receiving++;
    let done = false;
    const end = () => {
      if (done) return;
      done = true;
      receiving--;
    };
    req.resume();
    req.on('close', end);
    req.on('end', () => {
      end();
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  upstreamUrl = await serve(upstream);
});

afterAll(async () => {
  upstream.closeAllConnections();
  upstream.close();
  await database.drop();
});

const start = (env: Record<string, string>) => listenGatewayTo(database, upstreamUrl, ADMIN, env);

async function stop(running: { gateway: GatewayApp; server: RunningServer }): Promise<void> {
  await running.server.close();
  await running.gateway.close();
}

async function newKey(base: string): Promise<string> {
  const res = await request(base)
    .post('/api/v1/keys')
    .set('x-api-key', ADMIN)
    .send({ name: 'publisher', scopes: ['publish'] })
    .expect(201);
  return res.body.key as string;
}

const PUBLISH = '/api/v1/topics/jobs/messages';
const BODY = JSON.stringify({ messages: [{ payload: { n: 1 } }] });

/**
 * A publish whose body comes slowly: its headers and first bytes now, the rest by `finish` (or
 * never, when the client leaves by `abort`).
 */
function slowPublish(base: string, headers: Record<string, string>) {
  const req: ClientRequest = httpRequest(`${base}${PUBLISH}`, {
    method: 'POST',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': String(BODY.length), ...headers },
  });
  const status = new Promise<number>((resolve) => {
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
  req.write(BODY.slice(0, 5));
  return {
    status,
    finish: () => req.end(BODY.slice(5)),
    abort: () => req.destroy(),
  };
}

const publish = (base: string, headers: Record<string, string>): Promise<RawAnswer> =>
  rawRequest(`${base}${PUBLISH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: BODY,
  }).answer;

/** Waits until the upstream is receiving `count` bodies. */
async function untilReceiving(count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (receiving !== count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  expect(receiving).toBe(count);
}

describe('requests in flight, per client', () => {
  it('lets one key hold a quarter of GATEWAY_MAX_CONCURRENCY by default with slow bodies, and serves every other key', async () => {
    const running = await start({ GATEWAY_MAX_CONCURRENCY: '8' });
    try {
      const [slow, other] = [await newKey(running.base), await newKey(running.base)];
      const held = [
        slowPublish(running.base, { 'x-api-key': slow }),
        slowPublish(running.base, { 'x-api-key': slow }),
      ];
      await untilReceiving(2);
      expect(await metric(running.base, 'gateway_requests_in_flight')).toBe(2);

      // Its third is refused before its body is read; another key is served as before.
      const refused = await publish(running.base, { 'x-api-key': slow });
      expect(refused.status).toBe(503);
      expect(refused.headers['content-type']).toContain('application/problem+json');
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body).toMatchObject({
        status: 503,
        detail: 'This key has 2 requests in flight, its most at once; retry when one returns.',
      });
      for (let i = 0; i < 3; i++)
        expect((await publish(running.base, { 'x-api-key': other })).status).toBe(200);
      const others = [
        slowPublish(running.base, { 'x-api-key': other }),
        slowPublish(running.base, { 'x-api-key': other }),
      ];
      await untilReceiving(4);

      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency_per_client' })).toBe(
        1,
      );
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency' })).toBe(0);
      expect(running.logs.filter((l) => l.msg === 'request refused')).toEqual([
        expect.objectContaining({
          level: 'warn',
          reason: 'concurrency_per_client',
          client: expect.stringMatching(/^key:/),
          holding: 2,
          limit: 2,
        }),
      ]);

      // A body finished, or a client gone, gives the slot back.
      held[0]?.finish();
      expect(await held[0]?.status).toBe(200);
      held[1]?.abort();
      for (const pending of others) pending.finish();
      for (const pending of others) expect(await pending.status).toBe(200);
      await untilReceiving(0);
      const deadline = Date.now() + 5_000;
      while ((await metric(running.base, 'gateway_requests_in_flight')) > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(await metric(running.base, 'gateway_requests_in_flight')).toBe(0);
      const again = [
        slowPublish(running.base, { 'x-api-key': slow }),
        slowPublish(running.base, { 'x-api-key': slow }),
      ];
      await untilReceiving(2);
      for (const pending of again) pending.finish();
      for (const pending of again) expect(await pending.status).toBe(200);
    } finally {
      await stop(running);
    }
  });

  it('still refuses past GATEWAY_MAX_CONCURRENCY in all, whoever holds the slots', async () => {
    const running = await start({ GATEWAY_MAX_CONCURRENCY: '2', GATEWAY_MAX_CONCURRENCY_PER_CLIENT: '1' });
    try {
      const keys = [await newKey(running.base), await newKey(running.base), await newKey(running.base)];
      const held = keys.slice(0, 2).map((key) => slowPublish(running.base, { 'x-api-key': key }));
      await untilReceiving(2);
      const full = await publish(running.base, { 'x-api-key': keys[2] as string });
      expect(full.status).toBe(503);
      expect(full.headers['retry-after']).toBe('1');
      expect(full.body).toMatchObject({ status: 503, detail: 'Too many requests in flight; retry shortly.' });
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency' })).toBe(1);
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency_per_client' })).toBe(
        0,
      );
      for (const pending of held) pending.finish();
      for (const pending of held) expect(await pending.status).toBe(200);
    } finally {
      await stop(running);
    }
  });

  it('gives each client address group its share when keys are off (an IPv6 /64 is one client)', async () => {
    const running = await start({
      GATEWAY_AUTH: 'false',
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1',
      GATEWAY_MAX_CONCURRENCY_PER_CLIENT: '2',
    });
    try {
      const from = (address: string) => ({ 'x-forwarded-for': address });
      const held = [
        slowPublish(running.base, from('2001:db8:0:1::1')),
        slowPublish(running.base, from('2001:db8:0:1::2')),
      ];
      await untilReceiving(2);
      const third = await publish(running.base, from('2001:db8:0:1:ffff::3'));
      expect(third.status).toBe(503);
      expect(third.body.detail).toBe(
        'This address has 2 requests in flight, its most at once; retry when one returns.',
      );
      expect(running.logs.find((l) => l.msg === 'request refused')).toMatchObject({
        client: 'ip:2001:db8:0:1::/64',
      });
      // Another /64, and an IPv4 address, have shares of their own.
      expect((await publish(running.base, from('2001:db8:0:2::1'))).status).toBe(200);
      expect((await publish(running.base, from('198.51.100.7'))).status).toBe(200);
      for (const pending of held) pending.finish();
      for (const pending of held) expect(await pending.status).toBe(200);
    } finally {
      await stop(running);
    }
  });
});

describe('SlotBudget', () => {
  it('keeps an entry only for a client holding a slot', () => {
    const held: number[] = [];
    const budget = new SlotBudget(3, 2, (n) => held.push(n));
    expect([budget.take('a'), budget.take('a'), budget.take('a')]).toEqual([
      undefined,
      undefined,
      'per_client',
    ]);
    expect([budget.take('b'), budget.take('c')]).toEqual([undefined, 'all']);
    expect(budget.clients).toBe(2);
    budget.release('a');
    budget.release('a');
    budget.release('a'); // not held: nothing to give back
    budget.release('b');
    expect([budget.clients, budget.holding(), held]).toEqual([0, 0, [1, 2, 3, 2, 1, 0]]);
  });
});
