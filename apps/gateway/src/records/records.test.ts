import { createServer, type Server } from 'node:http';
import { AppError } from '@gpu-telemetry/model';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway, serve } from '../testing/gateway-test-app';
import type { GatewayDatabase } from '../gateway.tables';
import { AnalyticsService } from './analytics.service';

const ADMIN = 'bootstrap-admin-key-for-records-0123456789';
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let upstreamUrl: string;
let gateway: GatewayApp;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  upstream = createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'),
  );
  upstreamUrl = await serve(upstream);
  gateway = gatewayReplica();
});

/** A gateway on the test database in front of the upstream, writing its records when told to. */
function gatewayReplica(): GatewayApp {
  return createTestGateway(database, {
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_STREAMER_URLS: upstreamUrl,
    GATEWAY_QUEUE_URLS: upstreamUrl,
    GATEWAY_COLLECTOR_URLS: upstreamUrl,
    GATEWAY_RECORDS_FLUSH: '1m',
  });
}

afterAll(async () => {
  await gateway.close();
  upstream.close();
  await database.drop();
});

describe('request records', () => {
  it('records every proxied request with route, status, sizes, key, request and trace ids', async () => {
    const reader = (
      await request(gateway.app)
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .send({ name: 'r', scopes: ['read'] })
        .expect(201)
    ).body;
    await request(gateway.handler)
      .get('/api/v1/gpus?limit=5')
      .set('x-api-key', reader.key)
      .set('x-request-id', 'rec-1')
      .set('traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')
      .expect(200);
    await request(gateway.handler).get('/api/v1/topics').expect(401);
    await gateway.recorder?.flush();
    const res = await request(gateway.app)
      .get('/api/v1/requests?limit=10')
      .set('x-api-key', reader.key)
      .expect(200);
    expect(res.body.requests).toEqual([
      expect.objectContaining({
        route: 'topics',
        method: 'GET',
        path: '/api/v1/topics',
        status: 401,
        keyId: null,
      }),
      expect.objectContaining({
        route: 'gpus',
        path: '/api/v1/gpus',
        status: 200,
        bytesOut: 11,
        keyId: reader.id,
        requestId: 'rec-1',
        traceId: '0af7651916cd43dd8448eb211c80319c',
        // The instance by name: its address is no business of a read key's.
        upstream: 'streamer-0',
      }),
    ]);
    expect(JSON.stringify(res.body)).not.toContain(reader.key);
    expect(
      (await request(gateway.app).get('/api/v1/requests?status=401').set('x-api-key', reader.key).expect(200))
        .body.requests,
    ).toHaveLength(1);
  });

  it('stores any path a client sends exactly as sent, whatever characters it holds', async () => {
    const awkward = [
      '/api/v1/gpus/a\\b',
      '/api/v1/gpus/tab\there',
      '/api/v1/gpus/line\nbreak\r',
      '/api/v1/gpus/\\N',
    ];
    for (const [i, path] of awkward.entries()) {
      gateway.recorder?.record({
        at: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
        route: 'gpus',
        method: 'GET',
        path,
        status: 200,
        latencyMs: 1.5,
        bytesIn: 0,
        bytesOut: 2,
        keyId: null,
        requestId: `awkward-${i}`,
        traceId: null,
        upstream: null,
      });
    }
    await gateway.recorder?.flush();
    const res = await request(gateway.app)
      .get('/api/v1/requests?limit=4')
      .set('x-api-key', ADMIN)
      .expect(200);
    expect(res.body.requests.map((r: { path: string }) => r.path).reverse()).toEqual(awkward);
    expect(res.body.requests[0]).toMatchObject({
      keyId: null,
      traceId: null,
      upstream: null,
      latencyMs: 1.5,
    });
  });

  it('computes count, error rate and p50/p90/p99 per route on known data', async () => {
    await database.pool.query(
      `INSERT INTO gateway_requests (at, route, method, path, status, latency_ms, bytes_in, bytes_out, request_id)
       SELECT '2026-01-01T00:00:00Z'::timestamptz + n * interval '1 second', 'targets', 'GET', '/api/v1/targets',
              CASE WHEN n % 10 = 0 THEN 502 ELSE 200 END, n, 0, 0, 'known-' || n
       FROM generate_series(1, 100) AS n`,
    );
    const res = await request(gateway.app)
      .get('/api/v1/analytics/latency?route=targets&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z')
      .set('x-api-key', ADMIN)
      .expect(200);
    expect(res.body.routes).toEqual([
      { route: 'targets', count: 100, errorRate: 0.1, p50Ms: 50.5, p90Ms: 90.1, p99Ms: 99.01 },
    ]);
    const outside = await request(gateway.app)
      .get('/api/v1/analytics/latency?route=targets&from=2026-02-01T00:00:00Z&to=2026-02-02T00:00:00Z')
      .set('x-api-key', ADMIN)
      .expect(200);
    expect(outside.body.routes).toEqual([]);
  });

  it('cancels a read that outlasts its deadline, answering 503 instead of holding a connection', async () => {
    await database.pool.query(
      `INSERT INTO gateway_requests (at, route, method, path, status, latency_ms, bytes_in, bytes_out, request_id)
       SELECT '2025-01-01T00:00:00Z'::timestamptz + n * interval '1 second', 'gpus', 'GET', '/api/v1/gpus',
              200, n % 977, 0, 0, 'wide-' || n
       FROM generate_series(1, 200000) AS n`,
    );
    const wide = { from: new Date('1970-01-01T00:00:00Z'), to: new Date('9999-01-01T00:00:00Z') };
    const hurried = new AnalyticsService(database.db, 1);
    const refused = await hurried.latency(wide).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AppError);
    expect((refused as AppError).status).toBe(503);
    expect((refused as AppError).message).toMatch(/took longer than 0.001 s and was cancelled/);
    // The same question with the default deadline is answered, and the connection was given back.
    const answered = await new AnalyticsService(database.db).latency(wide);
    expect(answered.find((row) => row.route === 'gpus')?.count).toBeGreaterThanOrEqual(200_000);
    await database.pool.query(`DELETE FROM gateway_requests WHERE request_id LIKE 'wide-%'`);
  });

  it('filters by every route requests are recorded under', async () => {
    for (const route of ['gpus', 'storage', 'topics', 'prometheus', 'targets', 'write']) {
      const res = await request(gateway.app)
        .get(`/api/v1/analytics/latency?route=${route}&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z`)
        .set('x-api-key', ADMIN)
        .expect(200);
      for (const row of res.body.routes) expect(row.route).toBe(route);
      await request(gateway.app).get(`/api/v1/requests?route=${route}`).set('x-api-key', ADMIN).expect(200);
    }
  });

  it.each([
    ['/api/v1/analytics/latency?from=yesterday', 'from'],
    ['/api/v1/analytics/latency?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'],
    ['/api/v1/analytics/latency?route=admin', 'route'],
    ['/api/v1/analytics/latency?to=0000-06-01T00:00:00Z', 'to'],
    ['/api/v1/analytics/latency?to=9999-12-31T23:59:59-01:00', 'to'],
    ['/api/v1/requests?limit=0', 'limit'],
    ['/api/v1/requests?before=x', 'before'],
    ['/api/v1/requests?before=9223372036854775808', 'before'],
  ])('answers %s with 400 naming %s', async (url, field) => {
    const res = await request(gateway.app).get(url).set('x-api-key', ADMIN).expect(400);
    expect(res.body.errors[0].field).toBe(field);
  });

  it('starts the default hour no earlier than the year 1', async () => {
    const res = await request(gateway.app)
      .get('/api/v1/analytics/latency?to=0001-01-01T00:30:00Z')
      .set('x-api-key', ADMIN)
      .expect(200);
    expect([res.body.from, res.body.to]).toEqual(['0001-01-01T00:00:00.000Z', '0001-01-01T00:30:00.000Z']);
  });

  it('deletes records and spans older than GATEWAY_RETENTION, and keeps the rest', async () => {
    await database.pool.query(
      `INSERT INTO gateway_spans (trace_id, span_id, service, name, kind, start_time, end_time, duration_ms)
       VALUES ('${'1'.repeat(32)}', '${'2'.repeat(16)}', 'old', 'x', 1, now() - interval '30 days', now() - interval '30 days', 1),
              ('${'3'.repeat(32)}', '${'4'.repeat(16)}', 'new', 'y', 1, now(), now(), 1)`,
    );
    const before = await database.pool.query('SELECT count(*)::int AS n FROM gateway_requests');
    expect(await gateway.retention.runOnce(Date.now() + 3_600_000)).toEqual({ requests: 100, spans: 1 });
    const after = await database.pool.query('SELECT count(*)::int AS n FROM gateway_requests');
    expect(after.rows[0].n).toBe(before.rows[0].n - 100);
    const spans = await database.pool.query('SELECT service FROM gateway_spans');
    expect(spans.rows).toEqual([{ service: 'new' }]);
  });

  it('pages back through records two replicas wrote, each once, while a replica writes more', async () => {
    // A second gateway on the same database: each buffers its own records and writes them when it
    // flushes, so the later flush stores older requests after newer ones.
    const replica = gatewayReplica();
    try {
      const call = (app: GatewayApp, id: string) =>
        request(app.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).set('x-request-id', id).expect(200);
      for (let i = 0; i < 4; i++) await call(gateway, `page-a${i}`);
      for (let i = 0; i < 3; i++) await call(replica, `page-b${i}`);
      await replica.recorder?.flush();
      await gateway.recorder?.flush();
      const stored = (
        await database.pool.query<{ request_id: string }>(
          `SELECT request_id FROM gateway_requests WHERE request_id LIKE 'page-%' ORDER BY id DESC`,
        )
      ).rows.map((r) => r.request_id);
      expect(stored).toEqual(['page-a3', 'page-a2', 'page-a1', 'page-a0', 'page-b2', 'page-b1', 'page-b0']);

      const seen: string[] = [];
      let before: string | null = null;
      for (let page = 0; page < 10; page++) {
        const res = await request(gateway.app)
          .get(`/api/v1/requests?route=gpus&limit=3${before ? `&before=${before}` : ''}`)
          .set('x-api-key', ADMIN)
          .expect(200);
        seen.push(...(res.body.requests as { requestId: string }[]).map((r) => r.requestId));
        before = res.body.nextCursor as string | null;
        if (page === 0) {
          // Meanwhile the replica writes more: newer than every page, it is not in the pages after.
          await call(replica, 'page-late');
          await replica.recorder?.flush();
        }
        if (!before) break;
      }
      const paged = seen.filter((id) => id.startsWith('page-'));
      expect(paged).toEqual(stored);
      expect(new Set(seen).size).toBe(seen.length);
      const first = await request(gateway.app)
        .get('/api/v1/requests?route=gpus&limit=1')
        .set('x-api-key', ADMIN)
        .expect(200);
      expect(first.body.requests[0].requestId).toBe('page-late');
    } finally {
      await replica.close();
    }
  });

  it('needs a key with read scope', async () => {
    await request(gateway.app).get('/api/v1/requests').expect(401);
  });
});
