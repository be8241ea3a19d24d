import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { linesLogger } from '@gpu-telemetry/service-kit/testing';
import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import request from 'supertest';
import type { GatewayApp } from '../app';
import type { GatewayDatabase } from '../gateway.tables';
import { createTestGateway } from '../testing/gateway-test-app';

/** The gateway's own routes (keys, analytics, trace reads) are traced as its proxied routes are. */
const ADMIN = 'bootstrap-admin-key-for-own-route-spans-0123456789';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
let database: TestDatabase<GatewayDatabase>;
let gateway: GatewayApp;
let recording: ReturnType<typeof recordSpans>;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  recording = recordSpans();
  database = await createTestDatabase<GatewayDatabase>();
  gateway = createTestGateway(
    database,
    { GATEWAY_ADMIN_KEY: ADMIN, GATEWAY_RECORDS: 'false' },
    linesLogger('gateway', 'info', lines),
  );
});

afterAll(async () => {
  await gateway.close();
  await database.drop();
  await recording.stop();
});

beforeEach(() => {
  recording.reset();
  lines.length = 0;
});

const api = () => request(gateway.handler);
const serverSpans = () => recording.spans().filter((span) => span.kind === SpanKind.SERVER);

describe('the gateway’s own routes', () => {
  it('continue the caller’s trace with a server span named by the route, and log under its trace id', async () => {
    const created = await api()
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .set('traceparent', CALLER)
      .send({ name: 'ci', scopes: ['read'] })
      .expect(201);
    const [span] = serverSpans();
    expect(span?.name).toBe('POST /api/v1/keys');
    expect(span?.spanContext().traceId).toBe(TRACE_ID);
    expect(span?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(span?.attributes).toMatchObject({
      'http.route': '/api/v1/keys',
      'http.response.status_code': 201,
    });
    // The route pattern, never the key's id, names the span of a call on one key.
    await api()
      .delete(`/api/v1/keys/${created.body.id as string}`)
      .set('x-api-key', ADMIN)
      .set('traceparent', CALLER)
      .expect(200);
    expect(serverSpans().map((s) => s.name)).toContain('DELETE /api/v1/keys/:id');
    const logged = lines.filter((line) => line['msg'] === 'request');
    expect(logged).toHaveLength(2);
    for (const line of logged) expect(line).toMatchObject({ traceId: TRACE_ID });
  });

  it('start a trace of their own for a caller that sends none, refusals included', async () => {
    await api().get('/api/v1/keys').expect(401);
    const [span] = serverSpans();
    expect(span?.name).toBe('GET');
    expect(span?.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(span?.spanContext().traceId).not.toBe(TRACE_ID);
    expect(span?.attributes).toMatchObject({ 'http.response.status_code': 401, 'url.path': '/api/v1/keys' });
    expect(span?.status.code).not.toBe(SpanStatusCode.ERROR);
  });

  it('mark a failure the caller cannot fix as an error', async () => {
    // The request table gone: the analytics read fails inside the gateway.
    await database.pool.query('ALTER TABLE gateway_requests RENAME TO gateway_requests_away');
    try {
      await api()
        .get('/api/v1/analytics/latency')
        .set('x-api-key', ADMIN)
        .set('traceparent', CALLER)
        .expect(500);
    } finally {
      await database.pool.query('ALTER TABLE gateway_requests_away RENAME TO gateway_requests');
    }
    const [span] = serverSpans();
    expect(span?.spanContext().traceId).toBe(TRACE_ID);
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(lines.find((line) => line['msg'] === 'unhandled error')).toMatchObject({ traceId: TRACE_ID });
  });

  it('leave the probes untraced', async () => {
    await api().get('/healthz').expect(200);
    await api().get('/metrics').expect(200);
    expect(serverSpans()).toEqual([]);
  });
});
