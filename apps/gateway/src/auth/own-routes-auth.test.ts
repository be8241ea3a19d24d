import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway } from '../testing/gateway-test-app';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * The gateway's own routes (keys, requests, analytics, traces, the OTLP receiver) ask for the key
 * before anything else: its method, its media type and its body are nobody's business without one.
 */
const ADMIN = 'bootstrap-admin-key-for-own-routes-0123456789';
const UNUSED_UPSTREAM = 'http://127.0.0.1:9';
let database: TestDatabase<GatewayDatabase>;
const gateways: GatewayApp[] = [];

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
});

afterAll(async () => {
  for (const gateway of gateways) await gateway.close();
  await database.drop();
});

function startGateway(env: Record<string, string> = {}): GatewayApp {
  const gateway = createTestGateway(database, {
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_STREAMER_URLS: UNUSED_UPSTREAM,
    GATEWAY_QUEUE_URLS: UNUSED_UPSTREAM,
    GATEWAY_COLLECTOR_URLS: UNUSED_UPSTREAM,
    GATEWAY_RECORDS: 'false',
    ...env,
  });
  gateways.push(gateway);
  return gateway;
}

/** 900 KiB of JSON that is not well formed. */
const MALFORMED = `{"name": "x", "scopes": [${'"read",'.repeat(900 * 147)}`;

/** Each request the review found answered before the key check, sent with `key` (or none). */
function probes(gateway: GatewayApp, key?: string) {
  const api = () => request(gateway.handler);
  const keyed = <T extends request.Test>(test: T): T =>
    key ? test.set('authorization', `Bearer ${key}`) : test;
  return {
    'POST /api/v1/keys, malformed JSON': () =>
      keyed(api().post('/api/v1/keys').set('content-type', 'application/json').send(MALFORMED)),
    'POST /api/v1/keys, text/plain': () =>
      keyed(api().post('/api/v1/keys').set('content-type', 'text/plain').send('name=x')),
    'PUT /api/v1/keys': () => keyed(api().put('/api/v1/keys').send({})),
    'PATCH /api/v1/keys/abc': () => keyed(api().patch('/api/v1/keys/abc').send({})),
    'DELETE /api/v1/requests': () => keyed(api().delete('/api/v1/requests')),
    'GET /v1/traces': () => keyed(api().get('/v1/traces')),
  };
}

async function authFailures(gateway: GatewayApp, reason: string): Promise<number> {
  const text = await gateway.metrics.registry.metrics();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('gateway_auth_failures_total{') && l.includes(`reason="${reason}"`));
  return Number(line?.split(' ')[1] ?? 0);
}

describe("the gateway's own routes without a key", () => {
  it('answer 401 before the method, the media type or the body is looked at, each counted', async () => {
    const gateway = startGateway();
    const before = await authFailures(gateway, 'missing');
    const sent = probes(gateway);
    for (const [name, send] of Object.entries(sent)) {
      const res = await send();
      expect([name, res.status]).toEqual([name, 401]);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
    expect(await authFailures(gateway, 'missing')).toBe(before + Object.keys(sent).length);
  });

  it('count toward the failed-auth throttle: past its burst, 429 with Retry-After', async () => {
    const gateway = startGateway({ GATEWAY_AUTH_FAILURE_LIMIT: '1', GATEWAY_AUTH_FAILURE_BURST: '3' });
    const sent = Object.values(probes(gateway));
    for (const send of sent.slice(0, 3)) expect((await send()).status).toBe(401);
    for (const send of sent.slice(3)) {
      const res = await send();
      expect(res.status).toBe(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect(await authFailures(gateway, 'throttled')).toBe(sent.length - 3);
  });

  it('leave health and the documentation open', async () => {
    const gateway = startGateway();
    await request(gateway.handler).get('/healthz').expect(200);
    await request(gateway.handler).get('/openapi.json').expect(200);
    await request(gateway.handler).get('/docs').expect(200);
  });

  it('serve the docs page under a policy that runs only its own scripts and lets no one frame it', async () => {
    const gateway = startGateway();
    const page = await request(gateway.handler).get('/docs').expect(200);
    const policy = String(page.headers['content-security-policy']);
    expect(policy.split('; ')).toEqual(
      expect.arrayContaining([
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
      ]),
    );
    // No inline script, which the policy would block: every script is a file of the gateway's.
    const scripts = [...page.text.matchAll(/<script([^>]*)>([^<]*)<\/script>/g)];
    expect(scripts.map(([, attributes, body]) => [attributes, body])).toEqual([
      [' src="/docs/assets/swagger-ui-bundle.js"', ''],
      [' src="/docs/start.js"', ''],
    ]);
    const start = await request(gateway.handler).get('/docs/start.js').expect(200);
    expect(start.headers['content-type']).toMatch(/^text\/javascript/);
    expect(start.text).toContain("SwaggerUIBundle({ url: '/openapi.json'");
  });
});

describe("the gateway's own routes with a key", () => {
  it('answer a key without the scope 403 before 405, 415 or 400', async () => {
    const gateway = startGateway();
    const created = await request(gateway.handler)
      .post('/api/v1/keys')
      .set('authorization', `Bearer ${ADMIN}`)
      .send({ name: 'reader', scopes: ['read'] })
      .expect(201);
    const before = await authFailures(gateway, 'scope');
    const sent = probes(gateway, created.body.key as string);
    for (const [name, send] of Object.entries(sent)) {
      const res = await send();
      expect([name, res.status]).toEqual([name, 403]);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    expect(await authFailures(gateway, 'scope')).toBe(before + Object.keys(sent).length);
    // What the key may do, it still does.
    await request(gateway.handler)
      .get('/api/v1/requests')
      .set('authorization', `Bearer ${created.body.key}`)
      .expect(200);
  });

  it('answer a key with the scope as before, each request spending a rate-limit token', async () => {
    const gateway = startGateway();
    const expected: Record<string, number> = {
      'POST /api/v1/keys, malformed JSON': 400,
      'POST /api/v1/keys, text/plain': 415,
      'PUT /api/v1/keys': 405,
      'PATCH /api/v1/keys/abc': 405,
      'DELETE /api/v1/requests': 405,
    };
    for (const [name, send] of Object.entries(probes(gateway, ADMIN))) {
      const res = await send();
      if (name === 'GET /v1/traces') {
        // The span receiver takes only keys with the traces scope (admin has it): then the method.
        expect(res.status).toBe(405);
        expect(res.headers['allow']).toBe('POST');
        continue;
      }
      expect([name, res.status]).toEqual([name, expected[name]]);
      expect(res.headers['ratelimit-remaining']).toEqual(expect.any(String));
    }
  });
});
