import { createServer, request as httpRequest, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger } from '@gpu-telemetry/service-kit';
import fc from 'fast-check';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway, serve } from '../testing/gateway-test-app';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * The gateway as an attacker meets it: with auth on, nothing but health and documentation answers
 * without a key, scopes hold on every route, keys never show up in logs or error bodies, and
 * every answer carries the security headers. Random input never gets a 5xx.
 */
const ADMIN = 'bootstrap-admin-key-for-security-0123456789';
const OPEN = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs']);
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let gateway: GatewayApp;
let logs = '';
let readKey: string;
let publishKey: string;
let consumeKey: string;
/** The request targets the upstream received. */
const forwarded: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  upstream = createServer((req, res) => {
    forwarded.push(req.url ?? '');
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  const url = await serve(upstream);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs += chunk.toString();
      done();
    },
  });
  gateway = createTestGateway(
    database,
    {
      GATEWAY_ADMIN_KEY: ADMIN,
      GATEWAY_STREAMER_URLS: url,
      GATEWAY_QUEUE_URLS: url,
      GATEWAY_COLLECTOR_URLS: url,
      GATEWAY_RATE_LIMIT: '100000',
      GATEWAY_RATE_BURST: '100000',
      GATEWAY_AUTH_FAILURE_BURST: '100000',
    },
    createLogger('gateway', 'debug', sink),
  );
  const create = async (scopes: string[]) =>
    (
      await request(gateway.handler)
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .send({ name: 'k', scopes })
        .expect(201)
    ).body.key as string;
  readKey = await create(['read']);
  publishKey = await create(['publish']);
  consumeKey = await create(['consume']);
});

afterAll(async () => {
  await gateway.close();
  upstream.close();
  await database.drop();
});

const api = () => request(gateway.handler);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
const segment = fc.oneof(
  fc.constantFrom(
    'api',
    'v1',
    'gpus',
    'topics',
    'targets',
    'keys',
    'requests',
    'analytics',
    'latency',
    'traces',
    'docs',
  ),
  fc.stringMatching(/^[\w.~-]{1,12}$/),
);
const paths = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => `/${parts.join('/')}`);

describe('without a key', () => {
  it('reaches nothing but health and documentation, on any path and method', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), paths, async (method, path) => {
        const res = await api()[method](path).send({ payload: 1 });
        expect(res.status).toBeLessThan(500);
        if (!OPEN.has(path) && res.status < 400)
          throw new Error(`${method} ${path} answered ${res.status} without a key`);
        // A '.' or '..' segment on a proxied route is refused for the path, before the key.
        const dotted = /\/\.{1,2}(?=\/|$)/.test(path);
        if (path.startsWith('/api/'))
          expect(dotted ? [400, 401, 404, 405] : [401, 404, 405]).toContain(res.status);
      }),
      { numRuns: 300 },
    );
    for (const path of [
      '/api/v1/gpus',
      '/api/v1/topics/x/messages',
      '/api/v1/targets',
      '/api/v1/keys',
      '/api/v1/requests',
    ]) {
      const res = await api().get(path).expect(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
  });
});

describe('scopes', () => {
  it('lets read keys read and nothing else, publish keys publish, consume keys consume, neither administer', async () => {
    const as = (key: string) => ({
      get: (path: string) => api().get(path).set('authorization', `Bearer ${key}`),
      post: (path: string) => api().post(path).set('authorization', `Bearer ${key}`).send({}),
      delete: (path: string) => api().delete(path).set('authorization', `Bearer ${key}`),
      put: (path: string) => api().put(path).set('authorization', `Bearer ${key}`).send({}),
    });
    const read = as(readKey);
    await read.get('/api/v1/gpus').expect(200);
    await read.get('/api/v1/topics/jobs').expect(200);
    await read.get('/api/v1/requests').expect(200);
    await read.post('/api/v1/topics/jobs/messages').expect(403);
    await read.post('/api/v1/topics/jobs/leases').expect(403);
    await read.post('/api/v1/targets').expect(403);
    await read.delete('/api/v1/targets/x').expect(403);
    await read.get('/api/v1/keys').expect(403);
    await read.post('/api/v1/keys').expect(403);
    const publish = as(publishKey);
    await publish.post('/api/v1/topics/jobs/messages').expect(200);
    for (const path of ['leases', 'acks', 'nacks', 'leases/l1/extend', 'leases/l1/release']) {
      await publish.post(`/api/v1/topics/jobs/${path}`).expect(403);
    }
    await publish.put('/api/v1/topics/jobs').expect(403);
    await publish.post('/api/v1/topics/jobs/dead/redrive').expect(403);
    await publish.post('/api/v1/targets').expect(403);
    await publish.get('/api/v1/keys').expect(403);
    await publish.delete(`/api/v1/keys/00000000-0000-4000-8000-000000000000`).expect(403);
    const consume = as(consumeKey);
    for (const path of ['leases', 'acks', 'nacks', 'leases/l1/extend', 'leases/l1/release']) {
      await consume.post(`/api/v1/topics/jobs/${path}`).expect(200);
    }
    const refused = await consume.post('/api/v1/topics/jobs/messages').expect(403);
    expect(refused.body.detail).toContain('"publish" scope');
    await consume.get('/api/v1/topics/jobs').expect(403);
    await consume.put('/api/v1/topics/jobs').expect(403);
    await consume.post('/api/v1/topics/jobs/dead/redrive').expect(403);
  });
});

describe('routes a read or publish key reaches', () => {
  it('take only the methods and paths those scopes are for: anything else on them needs admin', async () => {
    const as = (
      key: string,
      method: 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete' | 'trace',
      path: string,
    ) => api()[method](path).set('authorization', `Bearer ${key}`);
    const before = forwarded.length;
    const refused: [string, 'put' | 'patch' | 'delete' | 'trace' | 'get' | 'post', string][] = [
      [readKey, 'delete', '/prometheus/api/v1/query'],
      [readKey, 'put', '/prometheus/api/v1/admin/tsdb/snapshot'],
      [readKey, 'patch', '/prometheus/api/v1/rules'],
      [readKey, 'trace', '/prometheus/api/v1/query'],
      [publishKey, 'get', '/api/v1/write'],
      [publishKey, 'put', '/api/v1/write'],
      [publishKey, 'delete', '/api/v1/write'],
      [publishKey, 'post', '/api/v1/write/targets'],
    ];
    for (const [key, method, path] of refused) {
      const res = await as(key, method, path);
      expect([method, path, res.status]).toEqual([method, path, 403]);
    }
    expect(forwarded.slice(before)).toEqual([]);
    // What they are for still passes, and admin reaches the rest.
    await as(readKey, 'get', '/prometheus/api/v1/query?query=up').expect(200);
    await as(readKey, 'head', '/prometheus/api/v1/labels').expect(200);
    await as(readKey, 'post', '/prometheus/api/v1/query').expect(200);
    await as(publishKey, 'post', '/api/v1/write').expect(200);
    await as(ADMIN, 'delete', '/prometheus/api/v1/query').expect(200);
    await as(ADMIN, 'put', '/api/v1/write').expect(200);
    expect(forwarded.slice(before)).toEqual([
      '/v1/prometheus/api/v1/query?query=up',
      '/v1/prometheus/api/v1/labels',
      '/v1/prometheus/api/v1/query',
      '/v1/write',
      '/v1/prometheus/api/v1/query',
      '/v1/write',
    ]);
  });
});

describe('paths an upstream could read otherwise than the gateway', () => {
  const BODY = '{"maxAttempts":1}';
  /** Sends the request target as written (a client library would cut it at '#'). */
  function raw(base: string, method: string, target: string, key: string) {
    return new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
      const req = httpRequest(`${base}/`, {
        method,
        path: target,
        agent: false,
        headers: {
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': String(BODY.length),
        },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
        );
      });
      req.on('error', reject);
      req.end(BODY);
    });
  }

  it("are refused before any key decides on them: '#' and '\\' would turn a lease into topic settings", async () => {
    const server = createServer(gateway.handler);
    const base = await serve(server);
    try {
      // Express reads 'victim#/leases' as 'victim', and 'victim\\dead#/messages' as 'victim/dead':
      // a consume or publish key must not reach the settings or the dead letters so.
      const cases: [string, string, string][] = [
        ['PUT', '/api/v1/topics/victim#/leases', consumeKey],
        ['DELETE', '/api/v1/topics/victim\\dead#/messages', publishKey],
        ['POST', '/api/v1/topics/victim\\dead\\redrive#/messages', publishKey],
        ['GET', '/api/v1/gpus/a#b', readKey],
      ];
      const before = forwarded.length;
      for (const [method, target, key] of cases) {
        const res = await raw(base, method, target, key);
        expect([target, res.status]).toEqual([target, 400]);
        expect(res.type).toContain('application/problem+json');
        expect(JSON.parse(res.body).errors).toEqual([
          { field: 'path', message: expect.stringContaining('RFC 3986') },
        ]);
      }
      // Raw non-ASCII never gets that far: Node's parser answers 400 itself.
      expect((await raw(base, 'GET', '/api/v1/gpus/caf\u00e9', readKey)).status).toBe(400);
      expect(forwarded.slice(before)).toEqual([]);
      // Escaped, the same characters are a path like any other, and the key's scope decides.
      expect((await raw(base, 'PUT', '/api/v1/topics/victim%23/leases', consumeKey)).status).toBe(403);
      const escaped = await raw(base, 'GET', '/api/v1/gpus/a%23b?q=x%23y', readKey);
      expect([escaped.status, escaped.body]).toEqual([200, '{"ok":true}']);
      expect(forwarded.slice(before)).toEqual(['/v1/gpus/a%23b?q=x%23y']);
    } finally {
      server.close();
    }
  });

  it("refuses '.' and '..' segments, written or percent-encoded, before any key decides on them, and passes dots within a segment", async () => {
    const server = createServer(gateway.handler);
    const base = await serve(server);
    try {
      // Resolved upstream, each would reach another path than the one the key was checked for:
      // a GPU read would become the queue's topic settings, a publish to one topic another's.
      const cases: [string, string, string][] = [
        ['GET', '/api/v1/gpus/../../v1/keys', readKey],
        ['GET', '/api/v1/gpus/%2e%2e/%2E%2E/v1/topics/victim', readKey],
        ['POST', '/api/v1/topics/jobs/.%2e/victim/messages', publishKey],
        ['POST', '/api/v1/topics/jobs/%2E./victim/messages', publishKey],
        ['POST', '/api/v1/topics/jobs/%2e/leases', consumeKey],
        ['GET', '/api/v1/gpus/./GPU-1', readKey],
        ['GET', '/api/v1/gpus/..', readKey],
        ['GET', '/api/v1/gpus/%2e?metric=up', readKey],
        ['GET', '/prometheus/api/v1/../../../api/v1/gpus', readKey],
        // No key at all: refused for the path, not the key (no lookup spent on it).
        ['GET', '/api/v1/gpus/../x', 'gt_not-a-key'],
      ];
      const before = forwarded.length;
      for (const [method, target, key] of cases) {
        const res = await raw(base, method, target, key);
        expect([target, res.status]).toEqual([target, 400]);
        expect(res.type).toContain('application/problem+json');
        expect(JSON.parse(res.body)).toMatchObject({
          status: 400,
          detail: "The path holds a '.' or '..' segment.",
          errors: [{ field: 'path', message: expect.stringContaining("'..' segment") }],
        });
      }
      expect(forwarded.slice(before)).toEqual([]);
      // Dots within a segment are names like any other: a topic, a metric, a GPU id, '...'.
      const passed: [string, string, string][] = [
        ['POST', '/api/v1/topics/jobs.v1/messages', publishKey],
        ['POST', '/api/v1/topics/a.b/messages', publishKey],
        ['GET', '/api/v1/gpus/GPU-1.0/telemetry?metric=DCGM_FI_DEV_GPU_UTIL&from=..', readKey],
        ['GET', '/api/v1/gpus/.hidden/a..b/.../%2e%2e%2e', readKey],
        ['GET', '/prometheus/api/v1/label/instance.name/values', readKey],
      ];
      for (const [method, target, key] of passed) {
        const res = await raw(base, method, target, key);
        expect([target, res.status]).toEqual([target, 200]);
      }
      expect(forwarded.slice(before)).toEqual([
        '/v1/topics/jobs.v1/messages',
        '/v1/topics/a.b/messages',
        '/v1/gpus/GPU-1.0/telemetry?metric=DCGM_FI_DEV_GPU_UTIL&from=..',
        '/v1/gpus/.hidden/a..b/.../%2e%2e%2e',
        '/v1/prometheus/api/v1/label/instance.name/values',
      ]);
    } finally {
      server.close();
    }
  });
});

describe('credentials', () => {
  it('never writes a key to the logs or echoes one in an error body', async () => {
    const wrong = 'gt_wrong-key-that-must-not-leak-0123456789';
    const responses = [
      await api().get('/api/v1/gpus').set('authorization', `Bearer ${readKey}`),
      await api().get('/api/v1/gpus').set('x-api-key', publishKey),
      await api().get('/api/v1/gpus').set('authorization', `Bearer ${wrong}`),
      await api().get('/api/v1/keys').set('x-api-key', wrong),
      await api()
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .send({ name: 'x', scopes: ['root'] }),
      await api().get('/api/v1/requests').set('authorization', `Bearer ${ADMIN}`),
    ];
    for (const res of responses) {
      for (const key of [readKey, publishKey, wrong, ADMIN]) expect(res.text).not.toContain(key);
    }
    await gateway.recorder?.flush();
    expect(logs.length).toBeGreaterThan(0);
    for (const key of [readKey, publishKey, wrong, ADMIN]) expect(logs).not.toContain(key);
    const { rows } = await database.pool.query('SELECT * FROM gateway_requests');
    expect(JSON.stringify(rows)).not.toContain(readKey);
  });
});

describe('broken input to the gateway’s own endpoints', () => {
  it('answers broken bytes, odd content types, deep nesting, huge bodies and injected SQL with 4xx', async () => {
    const cases: [string, string | Buffer][] = [
      ['application/json', Buffer.from([0xff, 0xfe, 0x7b, 0x00])],
      ['application/json', '['.repeat(5_000) + ']'.repeat(5_000)],
      ['application/json', `{"name":"${'x'.repeat(2 * 1024 * 1024)}","scopes":["read"]}`],
      ['application/json', `{"name":"k","scopes":[${'"read",'.repeat(50_000)}"read"]}`],
      ['text/plain', 'name=k'],
      ['application/x-www-form-urlencoded', 'name=k&scopes=read'],
      ['application/json', ''],
    ];
    for (const [type, body] of cases) {
      const res = await api()
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .set('content-type', type)
        .send(body);
      expect(`${type} ${String(body).slice(0, 20)} -> ${res.status}`).toMatch(/-> 4\d\d$/);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    // A lone surrogate is valid JSON: the name is stored with U+FFFD in its place, nothing breaks.
    const lone = await api()
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .set('content-type', 'application/json')
      .send('{"name": "\\ud800", "scopes": ["read"]}');
    expect([201, 400]).toContain(lone.status);
    const injection = "x' OR '1'='1'; DROP TABLE gateway_requests; --";
    for (const path of [
      `/api/v1/analytics/latency?route=${encodeURIComponent(injection)}`,
      `/api/v1/requests?route=${encodeURIComponent(injection)}&status=${encodeURIComponent(injection)}`,
      `/api/v1/requests?before=${encodeURIComponent(injection)}`,
      `/api/v1/traces/${encodeURIComponent(injection)}`,
      `/api/v1/keys/${encodeURIComponent(injection)}`,
    ]) {
      const res = await api().get(path).set('x-api-key', ADMIN);
      expect(res.status).toBeLessThan(500);
    }
    await api()
      .delete(`/api/v1/keys/${encodeURIComponent(injection)}`)
      .set('x-api-key', ADMIN)
      .expect(400);
    const { rows } = await database.pool.query(
      "SELECT to_regclass('gateway_requests') IS NOT NULL AS present",
    );
    expect(rows[0].present).toBe(true);
  });
});

describe('responses', () => {
  it('carry the security headers and a request id, on proxied answers, refusals and span exports alike', async () => {
    for (const res of [
      await api().get('/api/v1/gpus').set('x-api-key', readKey),
      await api().get('/api/v1/gpus'),
      await api().get('/healthz'),
      await api().post('/v1/traces').set('content-type', 'application/json').send('{}'),
      await api().get('/v1/traces').set('authorization', 'Bearer nope'),
    ]) {
      expect(res.headers['x-request-id']).toMatch(/^[\w.:-]+$/);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['x-powered-by']).toBeUndefined();
    }
  });

  it('answer random bodies to the gateway’s own endpoints with 2xx or 4xx, never 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          '/api/v1/keys',
          '/api/v1/analytics/latency',
          '/api/v1/requests',
          '/api/v1/traces/abc',
        ),
        fc.constantFrom('get', 'post', 'delete'),
        fc.jsonValue({ maxDepth: 4 }),
        fc.dictionary(
          fc.constantFrom('route', 'from', 'to', 'status', 'limit', 'before', 'x'),
          fc.string({ maxLength: 30 }),
        ),
        async (path, method, body, query) => {
          const res = await api()
            [method](path)
            .set('x-api-key', ADMIN)
            .query(query)
            .send(JSON.stringify(body))
            .set('content-type', 'application/json');
          expect(res.status).toBeLessThan(500);
          if (res.status >= 400) expect(res.headers['content-type']).toContain('application/problem+json');
        },
      ),
      { numRuns: 200 },
    );
  });
});
